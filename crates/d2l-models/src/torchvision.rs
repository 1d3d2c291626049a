//! torchvision's ImageNet models (D2L 13.2 fine-tuning, 13.11 FCN, 13.12 style
//! transfer): ResNet-18 and VGG-19 built from d2l-rs layers with **torchvision's exact
//! parameter and buffer names**, so that the released checkpoints
//! (`resnet18-f37072fd.pth`, `vgg19-dcbb9e9d.pth`) load as they are, read by
//! [`d2l_nn::pth`] — no Python, no conversion step.
//!
//! * [`resnet18`]`(num_classes)`: `conv1` (7×7, stride 2, padding 3, no bias), `bn1`,
//!   `relu`, `maxpool` (3, stride 2, padding 1), `layer1` … `layer4` of two
//!   [`BasicBlock`]s each (`conv1`/`bn1`/`conv2`/`bn2`, and `downsample.0` (1×1 conv, no
//!   bias) / `downsample.1` (batch norm) where the block changes shape), `avgpool`
//!   (adaptive, 1×1), `fc`. 11,689,512 parameters with 1000 classes.
//! * [`vgg19`]`(num_classes)`: `features.<i>` with torchvision's indices (convs at 0, 2,
//!   5, 7, 10, …, 34, each followed by a ReLU; max pools at 4, 9, 18, 27, 36), `avgpool`
//!   (adaptive, 7×7), `classifier.0/3/6` (Linear; ReLU and Dropout(0.5) between).
//!   143,667,240 parameters with 1000 classes.
//!
//! Fresh models are initialised as torchvision does (convs Kaiming-normal, fan-out,
//! ReLU gain; batch norms 1 and 0; VGG's linears N(0, 0.01²) with zero bias; ResNet's
//! `fc` PyTorch's Linear default).
//!
//! Fine-tuning as in D2L 14.2: build the 1000-class model, load the ImageNet weights,
//! then swap the head.
//!
//! ```no_run
//! use d2l_models::torchvision::{load_torchvision_weights, resnet18};
//! # fn main() -> d2l_tensor::Result<()> {
//! let mut net = resnet18(1000)?;
//! load_torchvision_weights(&net, "resnet18-f37072fd.pth")?;
//! let fc = net.replace_fc(2)?; // Linear(512, 2), Xavier-uniform weight
//! # let _ = fc;
//! # Ok(()) }
//! ```

use d2l_nn::conv::Conv2d;
use d2l_nn::init::{self, FanMode};
use d2l_nn::layers::{Dropout, Linear, ReLU};
use d2l_nn::norm::BatchNorm2d;
use d2l_nn::pool::{AdaptiveAvgPool2d, MaxPool2d};
use d2l_nn::pth;
use d2l_nn::serialize::LoadReport;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{Error, Result, Tensor};
use std::path::Path;
use std::sync::Arc;

fn tv_conv(i: usize, o: usize, k: usize, s: usize, p: usize, bias: bool) -> Result<Conv2d> {
    let c = Conv2d::builder(i, o, k)
        .stride(s)
        .padding(p)
        .bias(bias)
        .build()?;
    // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), bias 0.
    init::kaiming_normal_(&c.weight, 0.0, FanMode::FanOut, "relu")?;
    if let Some(b) = &c.bias {
        init::zeros_(b)?;
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------
// ResNet-18

/// torchvision's `BasicBlock`: `conv1` (3×3, stride s, padding 1, no bias) → `bn1` →
/// ReLU → `conv2` (3×3, padding 1, no bias) → `bn2`, plus the input — through
/// `downsample` (`0`: 1×1 conv, stride s, no bias; `1`: batch norm) when given — then
/// ReLU. Unlike D2L's `Residual` (`cnn::Residual`) no conv has a bias.
pub struct BasicBlock {
    /// The first 3×3 conv (stride s).
    pub conv1: Arc<Conv2d>,
    /// Batch norm after `conv1`.
    pub bn1: Arc<BatchNorm2d>,
    /// The ReLU (no parameters; listed for the layer tree).
    pub relu: Arc<ReLU>,
    /// The second 3×3 conv.
    pub conv2: Arc<Conv2d>,
    /// Batch norm after `conv2`.
    pub bn2: Arc<BatchNorm2d>,
    /// The shortcut `Sequential(1×1 conv, batch norm)` when the block changes shape.
    pub downsample: Option<Arc<Sequential>>,
}

impl BasicBlock {
    /// `BasicBlock(inplanes, planes, stride)`, with a downsample shortcut exactly when
    /// `stride != 1` or `inplanes != planes` (as `ResNet._make_layer` decides).
    pub fn new(inplanes: usize, planes: usize, stride: usize) -> Result<BasicBlock> {
        let downsample = if stride != 1 || inplanes != planes {
            Some(Arc::new(
                Sequential::new()
                    .add(tv_conv(inplanes, planes, 1, stride, 0, false)?)
                    .add(BatchNorm2d::new(planes)?),
            ))
        } else {
            None
        };
        Ok(BasicBlock {
            conv1: Arc::new(tv_conv(inplanes, planes, 3, stride, 1, false)?),
            bn1: Arc::new(BatchNorm2d::new(planes)?),
            relu: Arc::new(ReLU),
            conv2: Arc::new(tv_conv(planes, planes, 3, 1, 1, false)?),
            bn2: Arc::new(BatchNorm2d::new(planes)?),
            downsample,
        })
    }
}

impl Module for BasicBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let y = self.bn2.forward(&self.conv2.forward(&y)?)?;
        let identity = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        y.add(&identity)?.relu()
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        let mut v: Vec<(String, Arc<dyn Module>)> = vec![
            ("conv1".into(), self.conv1.clone()),
            ("bn1".into(), self.bn1.clone()),
            ("relu".into(), self.relu.clone()),
            ("conv2".into(), self.conv2.clone()),
            ("bn2".into(), self.bn2.clone()),
        ];
        if let Some(d) = &self.downsample {
            v.push(("downsample".into(), d.clone()));
        }
        v
    }

    fn describe(&self) -> String {
        "BasicBlock".into()
    }
}

/// torchvision's `ResNet` with [`BasicBlock`]s. The fields are public and named as
/// torchvision's attributes; [`ResNet::replace_fc`] swaps the head for fine-tuning
/// (assigning `net.fc` directly works too, as `finetune_net.fc = nn.Linear(512, 2)`).
pub struct ResNet {
    /// 7×7 stem conv, stride 2, padding 3, no bias.
    pub conv1: Arc<Conv2d>,
    /// Batch norm after the stem conv.
    pub bn1: Arc<BatchNorm2d>,
    /// The stem's ReLU.
    pub relu: Arc<ReLU>,
    /// 3×3 max pool, stride 2, padding 1.
    pub maxpool: Arc<MaxPool2d>,
    /// 64 channels, stride 1.
    pub layer1: Arc<Sequential>,
    /// 128 channels, stride 2.
    pub layer2: Arc<Sequential>,
    /// 256 channels, stride 2.
    pub layer3: Arc<Sequential>,
    /// 512 channels, stride 2.
    pub layer4: Arc<Sequential>,
    /// Global average pooling.
    pub avgpool: Arc<AdaptiveAvgPool2d>,
    /// The classifier, `Linear(512, num_classes)`.
    pub fc: Arc<Linear>,
}

fn make_layer(inplanes: usize, planes: usize, blocks: usize, stride: usize) -> Result<Sequential> {
    let mut s = Sequential::new();
    s.push(BasicBlock::new(inplanes, planes, stride)?);
    for _ in 1..blocks {
        s.push(BasicBlock::new(planes, planes, 1)?);
    }
    Ok(s)
}

/// torchvision's `resnet18(num_classes=num_classes)`: 11,689,512 parameters for 1000
/// classes, 11,177,538 for 2. Input [N, 3, H, W] (any H, W ≥ 32 or so), output
/// [N, num_classes].
pub fn resnet18(num_classes: usize) -> Result<ResNet> {
    if num_classes == 0 {
        return Err(Error::InvalidArgument {
            op: "resnet18",
            msg: "num_classes must be at least 1".into(),
        });
    }
    Ok(ResNet {
        conv1: Arc::new(tv_conv(3, 64, 7, 2, 3, false)?),
        bn1: Arc::new(BatchNorm2d::new(64)?),
        relu: Arc::new(ReLU),
        maxpool: Arc::new(MaxPool2d::new(3).stride(2).padding(1)),
        layer1: Arc::new(make_layer(64, 64, 2, 1)?),
        layer2: Arc::new(make_layer(64, 128, 2, 2)?),
        layer3: Arc::new(make_layer(128, 256, 2, 2)?),
        layer4: Arc::new(make_layer(256, 512, 2, 2)?),
        avgpool: Arc::new(AdaptiveAvgPool2d::new(1)),
        fc: Arc::new(Linear::new(512, num_classes)?),
    })
}

/// ResNet-18 without `avgpool` and `fc` (D2L 13.11's FCN body): a fresh model's
/// [`ResNet::body`]. Output [N, 512, H/32, W/32].
pub fn resnet18_body() -> Result<Sequential> {
    Ok(resnet18(1000)?.body())
}

impl ResNet {
    /// The layers up to `layer4`, as `nn.Sequential(*list(net.children())[:-2])`: named
    /// `0` (conv1), `1` (bn1), `2` (relu), `3` (maxpool), `4` … `7` (layer1 … layer4),
    /// sharing this model's tensors (load the weights first, then take the body).
    pub fn body(&self) -> Sequential {
        Sequential::new()
            .add_shared(self.conv1.clone())
            .add_shared(self.bn1.clone())
            .add_shared(self.relu.clone())
            .add_shared(self.maxpool.clone())
            .add_shared(self.layer1.clone())
            .add_shared(self.layer2.clone())
            .add_shared(self.layer3.clone())
            .add_shared(self.layer4.clone())
    }

    /// Replaces `fc` by a new `Linear(512, num_classes)` whose weight is Xavier-uniform
    /// (D2L 14.2: `finetune_net.fc = nn.Linear(512, 2); nn.init.xavier_uniform_(
    /// finetune_net.fc.weight)`), and returns it (to give its parameters a larger
    /// learning rate).
    pub fn replace_fc(&mut self, num_classes: usize) -> Result<Arc<Linear>> {
        let fc = Linear::new(self.fc.in_features(), num_classes)?;
        init::xavier_uniform_(&fc.weight, 1.0)?;
        self.fc = Arc::new(fc);
        Ok(self.fc.clone())
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.body().forward(x)?;
        let y = self.avgpool.forward(&y)?.flatten(1, -1)?;
        self.fc.forward(&y)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("conv1".into(), self.conv1.clone()),
            ("bn1".into(), self.bn1.clone()),
            ("relu".into(), self.relu.clone()),
            ("maxpool".into(), self.maxpool.clone()),
            ("layer1".into(), self.layer1.clone()),
            ("layer2".into(), self.layer2.clone()),
            ("layer3".into(), self.layer3.clone()),
            ("layer4".into(), self.layer4.clone()),
            ("avgpool".into(), self.avgpool.clone()),
            ("fc".into(), self.fc.clone()),
        ]
    }

    fn describe(&self) -> String {
        "ResNet".into()
    }
}

// ---------------------------------------------------------------------------------------
// VGG-19

/// VGG-19's configuration "E": output channels of each conv, `None` for a max pool.
const VGG19_CFG: [Option<usize>; 21] = [
    Some(64),
    Some(64),
    None,
    Some(128),
    Some(128),
    None,
    Some(256),
    Some(256),
    Some(256),
    Some(256),
    None,
    Some(512),
    Some(512),
    Some(512),
    Some(512),
    None,
    Some(512),
    Some(512),
    Some(512),
    Some(512),
    None,
];

/// The number of layers in VGG-19's `features` (16 convs, 16 ReLUs, 5 max pools).
pub const VGG19_FEATURES_LEN: usize = 37;

fn vgg19_feature_layers(upto: usize) -> Result<Sequential> {
    let mut s = Sequential::new();
    let mut c = 3;
    for v in VGG19_CFG {
        if s.len() > upto {
            break;
        }
        match v {
            Some(o) => {
                s.push(tv_conv(c, o, 3, 1, 1, true)?);
                if s.len() <= upto {
                    s.push(ReLU);
                }
                c = o;
            }
            None => s.push(MaxPool2d::new(2).stride(2)),
        }
    }
    Ok(s)
}

/// torchvision's `VGG` (configuration E, no batch norm). Fields named as torchvision's.
pub struct Vgg {
    /// The convolutional part, `features.0` … `features.36`.
    pub features: Arc<Sequential>,
    /// Adaptive average pooling to 7×7.
    pub avgpool: Arc<AdaptiveAvgPool2d>,
    /// `Linear(25088, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU, Dropout,
    /// Linear(4096, num_classes)`.
    pub classifier: Arc<Sequential>,
}

/// torchvision's `vgg19(num_classes=num_classes)`: 143,667,240 parameters for 1000
/// classes. Input [N, 3, H, W] with H, W ≥ 32, output [N, num_classes].
pub fn vgg19(num_classes: usize) -> Result<Vgg> {
    fn linear(i: usize, o: usize) -> Result<Linear> {
        let l = Linear::new(i, o)?;
        init::normal_(&l.weight, 0.0, 0.01)?;
        if let Some(b) = &l.bias {
            init::zeros_(b)?;
        }
        Ok(l)
    }
    if num_classes == 0 {
        return Err(Error::InvalidArgument {
            op: "vgg19",
            msg: "num_classes must be at least 1".into(),
        });
    }
    let classifier = Sequential::new()
        .add(linear(512 * 7 * 7, 4096)?)
        .add(ReLU)
        .add(Dropout::new(0.5)?)
        .add(linear(4096, 4096)?)
        .add(ReLU)
        .add(Dropout::new(0.5)?)
        .add(linear(4096, num_classes)?);
    Ok(Vgg {
        features: Arc::new(vgg19_feature_layers(VGG19_FEATURES_LEN - 1)?),
        avgpool: Arc::new(AdaptiveAvgPool2d::new(7)),
        classifier: Arc::new(classifier),
    })
}

fn check_upto(upto: usize) -> Result<()> {
    if upto >= VGG19_FEATURES_LEN {
        return Err(Error::InvalidArgument {
            op: "vgg19_features",
            msg: format!(
                "VGG-19's features has layers 0..={}, asked for up to {upto}",
                VGG19_FEATURES_LEN - 1
            ),
        });
    }
    Ok(())
}

/// The first `upto + 1` layers of a fresh VGG-19's `features` (D2L 13.12 style transfer
/// takes `upto = 28`: 12,944,960 parameters), named `0` … `upto` like
/// `nn.Sequential(*[features[i] for i in range(upto + 1)])`. To start from the ImageNet
/// weights, load them into [`vgg19`] and use [`Vgg::features_upto`].
pub fn vgg19_features(upto: usize) -> Result<Sequential> {
    check_upto(upto)?;
    vgg19_feature_layers(upto)
}

impl Vgg {
    /// The first `upto + 1` layers of `features`, sharing this model's tensors.
    pub fn features_upto(&self, upto: usize) -> Result<Sequential> {
        check_upto(upto)?;
        let mut s = Sequential::new();
        for i in 0..=upto {
            let layer = self.features.get(i).expect("checked against the length");
            s = s.add_shared(layer.clone());
        }
        Ok(s)
    }

    /// Replaces the last classifier layer (`classifier.6`) by a fresh
    /// `Linear(4096, num_classes)` (Xavier-uniform weight), keeping the others, and
    /// returns it.
    pub fn replace_head(&mut self, num_classes: usize) -> Result<Arc<Linear>> {
        let head = Linear::new(4096, num_classes)?;
        init::xavier_uniform_(&head.weight, 1.0)?;
        let head = Arc::new(head);
        let mut c = Sequential::new();
        for i in 0..self.classifier.len() - 1 {
            c = c.add_shared(self.classifier.get(i).expect("in range").clone());
        }
        self.classifier = Arc::new(c.add_shared(head.clone()));
        Ok(head)
    }
}

impl Module for Vgg {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.features.forward(x)?;
        let y = self.avgpool.forward(&y)?.flatten(1, -1)?;
        self.classifier.forward(&y)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("features".into(), self.features.clone()),
            ("avgpool".into(), self.avgpool.clone()),
            ("classifier".into(), self.classifier.clone()),
        ]
    }

    fn describe(&self) -> String {
        "VGG".into()
    }
}

// ---------------------------------------------------------------------------------------
// loading

/// Loads a torchvision checkpoint (`.pth`, read by [`pth::load_pth`]) into `net` by name,
/// strictly: its `num_batches_tracked` entries are dropped (the model keeps its own
/// counters), and any name missing on either side or any shape mismatch (reported with
/// the name, the model's shape and the file's) is one error, with nothing loaded.
pub fn load_torchvision_weights(net: &dyn Module, path: impl AsRef<Path>) -> Result<LoadReport> {
    let path = path.as_ref();
    let entries: Vec<(String, Tensor)> = pth::load_pth(path)?
        .into_iter()
        .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
        .collect();
    pth::load_state_dict_entries(net, &entries, true, &path.display().to_string())
}
