//! D2L 5.1–5.4 on the public API: blocks, Sequential, custom blocks and layers, parameter
//! access, sharing, freezing, initialisation, train/eval mode.

use d2l_nn::init::{self, FanMode};
use d2l_nn::layers::{Dropout, Flatten, Identity, LayerNorm, Linear, PhmLinear, ReLU};
use d2l_nn::module::{Module, Sequential};
use d2l_tensor::{manual_seed, Result, Tensor};
use std::sync::Arc;

mod common;
use common::{input, mlp, shared_net, Mlp};

/// `MySequential` (5.1.3): a block that runs its children in order.
struct MySequential(Vec<Arc<dyn Module>>);

impl Module for MySequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.iter().try_fold(x.clone(), |x, m| m.forward(&x))
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m.clone()))
            .collect()
    }
}

/// `FixedHiddenMLP` (5.1.4): a constant weight, a reused layer, and Python control flow.
struct FixedHiddenMlp {
    rand_weight: Tensor,
    linear: Arc<Linear>,
}

impl Module for FixedHiddenMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.linear.forward(x)?;
        x = x.matmul(&self.rand_weight)?.add_scalar(1.0)?.relu()?;
        x = self.linear.forward(&x)?; // the same layer twice: shared parameters
        while x.abs()?.sum_all()?.item()? > 1.0 {
            x = x.div_scalar(2.0)?;
        }
        x.sum_all()
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![("linear".into(), self.linear.clone())]
    }
}

/// `NestMLP` (5.1.4): a block holding a Sequential and a layer.
struct NestMlp {
    net: Arc<Sequential>,
    linear: Arc<Linear>,
}

impl Module for NestMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear.forward(&self.net.forward(x)?)
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("net".into(), self.net.clone()),
            ("linear".into(), self.linear.clone()),
        ]
    }
}

/// `CenteredLayer` (5.4.1): no parameters.
struct CenteredLayer;

impl Module for CenteredLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.sub(&x.mean_all()?)
    }
}

/// `MyLinear` (5.4.2): a layer with its own parameters.
struct MyLinear {
    weight: Tensor,
    bias: Tensor,
}

impl MyLinear {
    fn new(in_units: usize, units: usize) -> Result<Self> {
        Ok(MyLinear {
            weight: Tensor::randn(&[in_units, units]).requires_grad_(true)?,
            bias: Tensor::randn(&[units]).requires_grad_(true)?,
        })
    }
}

impl Module for MyLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight)?.add(&self.bias)?.relu()
    }
    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![
            ("weight".into(), self.weight.clone()),
            ("bias".into(), self.bias.clone()),
        ]
    }
}

#[test]
fn sequential_and_custom_blocks() -> Result<()> {
    let x = input(&[2, 20], 1);
    let net = mlp(20, 256, 10)?;
    assert_eq!(net.forward(&x)?.shape(), &[2, 10]);
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);

    let mlp = Mlp::new("out")?; // 5.1.2
    assert_eq!(mlp.forward(&x)?.shape(), &[2, 10]);
    assert_eq!(mlp.named_parameters()[0].0, "hidden.weight");

    let myseq = MySequential(vec![
        Arc::new(Linear::new(20, 256)?),
        Arc::new(ReLU),
        Arc::new(Linear::new(256, 10)?),
    ]);
    assert_eq!(myseq.forward(&x)?.shape(), &[2, 10]);
    assert_eq!(myseq.num_parameters(), 20 * 256 + 256 + 256 * 10 + 10);

    let fixed = FixedHiddenMlp {
        rand_weight: Tensor::rand(&[20, 20]),
        linear: Arc::new(Linear::new(20, 20)?),
    };
    let y = fixed.forward(&x)?;
    assert_eq!(y.shape(), &[] as &[usize]);
    assert!(y.abs()?.item()? <= 1.0);
    assert_eq!(
        fixed.named_parameters().len(),
        2,
        "the constant weight is not a parameter"
    );

    let nest = NestMlp {
        net: Arc::new(
            Sequential::new()
                .add(Linear::new(20, 64)?)
                .add(ReLU)
                .add(Linear::new(64, 32)?)
                .add(ReLU),
        ),
        linear: Arc::new(Linear::new(32, 16)?),
    };
    let chimera = Sequential::new()
        .add(nest)
        .add(Linear::new(16, 20)?)
        .add(fixed);
    assert_eq!(chimera.forward(&x)?.shape(), &[] as &[usize]);
    let names: Vec<String> = chimera
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names[0], "0.net.0.weight");
    assert_eq!(names.last().unwrap(), "2.linear.bias");
    let tree = chimera.summary_tree();
    assert!(
        tree.contains("(0): NestMlp(")
            && tree.contains("Linear(in_features=20, out_features=64, bias=True)"),
        "{tree}"
    );
    Ok(())
}

#[test]
fn custom_layers() -> Result<()> {
    let c = CenteredLayer.forward(&Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0], &[5])?)?;
    assert_eq!(c.to_vec::<f32>(), vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
    let net = Sequential::new()
        .add(Linear::new(8, 128)?)
        .add(CenteredLayer);
    let y = net.forward(&input(&[4, 8], 2))?;
    assert!(y.mean_all()?.item()?.abs() < 1e-6);
    let linear = MyLinear::new(5, 3)?;
    assert_eq!(linear.forward(&input(&[2, 5], 3))?.shape(), &[2, 3]);
    let net = Sequential::new()
        .add(MyLinear::new(64, 8)?)
        .add(MyLinear::new(8, 1)?);
    assert_eq!(net.forward(&input(&[2, 64], 4))?.shape(), &[2, 1]);
    assert_eq!(net.parameter("1.weight")?.shape(), &[8, 1]);
    Ok(())
}

#[test]
fn parameter_access() -> Result<()> {
    let net = mlp(4, 8, 1)?;
    let p = net.named_parameters();
    let shapes: Vec<(&str, Vec<usize>)> = p
        .iter()
        .map(|(n, t)| (n.as_str(), t.shape().to_vec()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("0.weight", vec![8, 4]),
            ("0.bias", vec![8]),
            ("2.weight", vec![1, 8]),
            ("2.bias", vec![1])
        ]
    );
    assert_eq!(net.num_parameters(), 8 * 4 + 8 + 8 + 1);
    assert!(
        net.parameter("2.bias")?.grad().is_none(),
        "no gradient before backward"
    );
    let e = net.parameter("3.weight").unwrap_err().to_string();
    assert!(e.contains("3.weight") && e.contains("0.weight"), "{e}");
    // Typed access to a layer.
    assert_eq!(net.get_as::<Linear>(2).unwrap().in_features(), 8);
    Ok(())
}

#[test]
fn shared_parameters_get_both_gradients_and_are_listed_once() -> Result<()> {
    let (net, _) = shared_net()?;
    let w2 = net.parameter("2.weight")?;
    let w4 = net.get(4).unwrap().parameters()[0].clone();
    assert!(
        w2.shares_storage(&w4) && w2.id() == w4.id(),
        "the same tensor"
    );
    init::constant_(&w2, 0.5)?;
    assert_eq!(w4.to_vec::<f32>()[0], 0.5, "changing one changes the other");
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("4.")),
        "listed once: {names:?}"
    );
    assert_eq!(net.state_dict().len(), 6, "saved once");

    // The gradient of a shared layer is the sum over its uses: compare with two
    // separate copies holding the same values.
    let x = input(&[3, 4], 5);
    net.forward(&x)?.sum_all()?.backward()?;
    let g_shared = w2.grad().unwrap();
    let copy_a = Linear::from_tensors(
        w2.detach().copy()?,
        Some(net.parameter("2.bias")?.detach().copy()?),
    )?;
    let copy_b = Linear::from_tensors(
        w2.detach().copy()?,
        Some(net.parameter("2.bias")?.detach().copy()?),
    )?;
    let first: Arc<dyn Module> = net.get(0).unwrap().clone();
    let last: Arc<dyn Module> = net.get(6).unwrap().clone();
    let unshared = Sequential::new()
        .add_shared(first)
        .add(ReLU)
        .add(copy_a)
        .add(ReLU)
        .add(copy_b)
        .add(ReLU)
        .add_shared(last);
    unshared.forward(&x)?.sum_all()?.backward()?;
    let ga = unshared.get_as::<Linear>(2).unwrap().weight.grad().unwrap();
    let gb = unshared.get_as::<Linear>(4).unwrap().weight.grad().unwrap();
    let sum = ga.add(&gb)?.to_vec::<f32>();
    for (a, b) in g_shared.to_vec::<f32>().iter().zip(sum) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    Ok(())
}

#[test]
fn freezing_stops_gradients() -> Result<()> {
    let net = mlp(4, 3, 1)?;
    net.get(0).unwrap().requires_grad_(false)?;
    net.forward(&input(&[2, 4], 6))?.sum_all()?.backward()?;
    assert!(net.parameter("0.weight")?.grad().is_none());
    assert!(net.parameter("2.weight")?.grad().is_some());
    net.requires_grad_(true)?;
    assert!(net.parameter("0.weight")?.requires_grad());
    Ok(())
}

#[test]
fn initialisation() -> Result<()> {
    manual_seed(0);
    let net = mlp(400, 300, 1)?;
    // The book's net.apply(init_normal): every Linear gets N(0, 0.01²) weights and zero bias.
    net.apply(&mut |m: &dyn Module| {
        if let Some(l) = m.as_any().downcast_ref::<Linear>() {
            init::normal_(&l.weight, 0.0, 0.01)?;
            init::zeros_(l.bias.as_ref().unwrap())?;
        }
        Ok(())
    })?;
    let w = net.parameter("0.weight")?;
    assert!((w.std(&[0, 1], true, false)?.item()? - 0.01).abs() < 0.0005);
    assert_eq!(net.parameter("2.bias")?.to_vec::<f32>(), vec![0.0]);
    init::constant_(&w, 1.0)?;
    assert_eq!(w.to_vec::<f32>()[17], 1.0);
    // Xavier uniform: bound √(6 / (400 + 300)); variance bound²/3.
    init::xavier_uniform_(&w, 1.0)?;
    let bound = (6.0f64 / 700.0).sqrt();
    assert!(w.max_all()?.item()? as f64 <= bound && w.min_all()?.item()? as f64 >= -bound);
    assert!((w.std(&[0, 1], true, false)?.item()? as f64 - bound / 3f64.sqrt()).abs() < 0.002);
    init::xavier_normal_(&w, 1.0)?;
    assert!((w.std(&[0, 1], true, false)?.item()? as f64 - (2.0f64 / 700.0).sqrt()).abs() < 0.002);
    // Kaiming normal, fan_in, ReLU: std √2/√400.
    init::kaiming_normal_(&w, 0.0, FanMode::FanIn, "relu")?;
    assert!((w.std(&[0, 1], true, false)?.item()? as f64 - (2.0f64 / 400.0).sqrt()).abs() < 0.003);
    init::kaiming_uniform_(&w, 0.0, FanMode::FanOut, "relu")?;
    let b = (6.0f64 / 300.0).sqrt();
    assert!(w.max_all()?.item()? as f64 <= b && w.max_all()?.item()? as f64 > 0.9 * b);
    // PyTorch's Linear default: U(±1/√in).
    let l = Linear::new(400, 10)?;
    assert!(
        l.weight.abs()?.max_all()?.item()? <= 0.05 && l.weight.abs()?.max_all()?.item()? > 0.045
    );
    // The book's custom my_init: U(-10, 10) then zero where |w| < 5.
    init::custom_(&w, |s| {
        let u = Tensor::uniform(s, -10.0, 10.0)?;
        u.mul(&u.abs()?.ge_scalar(5.0)?.to_dtype(d2l_tensor::DType::F32)?)
    })?;
    let v = w.to_vec::<f32>();
    assert!(v.iter().all(|x| *x == 0.0 || x.abs() >= 5.0));
    assert!(init::custom_(&w, |_| Ok(Tensor::zeros(&[2]))).is_err());
    assert!(
        init::xavier_uniform_(&Tensor::zeros(&[3]), 1.0).is_err(),
        "1-D has no fans"
    );
    assert!((init::calculate_gain("tanh", None)? - 5.0 / 3.0).abs() < 1e-12);
    Ok(())
}

#[test]
fn dropout_and_modes() -> Result<()> {
    let drop = Dropout::new(0.5)?;
    let x = Tensor::ones(&[1000]);
    let y = drop.forward(&x)?.to_vec::<f32>();
    assert!(
        y.iter().all(|v| *v == 0.0 || *v == 2.0),
        "inverted dropout scales kept values"
    );
    let kept = y.iter().filter(|v| **v == 2.0).count();
    assert!((400..600).contains(&kept), "about half kept: {kept}");
    let net = Sequential::new()
        .add(Linear::new(4, 4)?)
        .add(Dropout::new(0.9)?)
        .add(Identity);
    net.eval();
    let x = input(&[2, 4], 7);
    assert_eq!(
        net.forward(&x)?.to_vec::<f32>(),
        net.forward(&x)?.to_vec::<f32>(),
        "eval mode is deterministic"
    );
    net.train();
    assert!(Dropout::new(1.5).is_err());
    assert_eq!(Dropout::new(1.0)?.forward(&x)?.sum_all()?.item()?, 0.0);
    Ok(())
}

#[test]
fn flatten_layernorm_embedding() -> Result<()> {
    let x = input(&[2, 1, 28, 28], 8);
    assert_eq!(Flatten::new().forward(&x)?.shape(), &[2, 784]);
    let ln = LayerNorm::new(&[4])?;
    let y = ln.forward(&Tensor::from_slice(
        &[1.0f32, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 6.0],
        &[2, 4],
    )?)?;
    // Row 1: mean 2.5, biased var 1.25 → (x - 2.5)/√(1.25 + 1e-5).
    let expect = (1.0 - 2.5) / (1.25f32 + 1e-5).sqrt();
    assert!((y.to_vec::<f32>()[0] - expect).abs() < 1e-5);
    assert!(y.mean(&[1], false)?.abs()?.max_all()?.item()? < 1e-6);
    assert!(LayerNorm::new(&[4])?
        .forward(&Tensor::ones(&[2, 5]))
        .is_err());
    let emb = d2l_nn::layers::Embedding::new(10, 3)?;
    let idx = Tensor::from_vec(vec![1i64, 2, 1, 9], &[2, 2])?;
    let e = emb.forward(&idx)?;
    assert_eq!(e.shape(), &[2, 2, 3]);
    assert_eq!(e.to_vec::<f32>()[..3], e.to_vec::<f32>()[6..9]);
    assert!(
        emb.forward(&Tensor::from_vec(vec![10i64], &[1])?).is_err(),
        "out-of-range index is an error"
    );
    Ok(())
}

#[test]
fn phm_linear_is_a_cheaper_dense_layer() -> Result<()> {
    let (d, q, n) = (8, 12, 4);
    let phm = PhmLinear::new(d, q, n)?;
    // n³ + d·q/n weights + q biases, against d·q + q for a dense layer.
    assert_eq!(phm.num_parameters(), n * n * n + d * q / n + q);
    assert!(phm.num_parameters() < d * q + q);
    let dense = Linear::from_tensors(phm.weight()?.detach(), Some(phm.bias.detach()))?;
    let x = input(&[5, d], 9);
    let (a, b) = (
        phm.forward(&x)?.to_vec::<f32>(),
        dense.forward(&x)?.to_vec::<f32>(),
    );
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() < 1e-5);
    }
    // Gradients reach the Kronecker factors.
    phm.forward(&x)?.sum_all()?.backward()?;
    assert!(phm.a.grad().is_some() && phm.s.grad().is_some());
    assert!(PhmLinear::new(10, 12, 4).is_err(), "d not divisible by n");
    Ok(())
}

#[test]
fn deferred_initialisation() -> Result<()> {
    use d2l_nn::layers::LazyLinear;
    let net = Sequential::new()
        .add(LazyLinear::new(256)?)
        .add(ReLU)
        .add(LazyLinear::new(10)?);
    assert!(
        net.parameters().is_empty(),
        "no parameters before data flows"
    );
    assert_eq!(net.forward(&input(&[2, 20], 10))?.shape(), &[2, 10]);
    let shapes: Vec<Vec<usize>> = net
        .parameters()
        .iter()
        .map(|p| p.shape().to_vec())
        .collect();
    assert_eq!(shapes, [vec![256, 20], vec![256], vec![10, 256], vec![10]]);
    // Later batches must agree with the inferred size.
    assert!(net.forward(&input(&[2, 21], 11)).is_err());
    Ok(())
}

#[test]
fn linear_rejects_bad_input() -> Result<()> {
    let l = Linear::new(4, 2)?;
    let e = l.forward(&Tensor::ones(&[3, 5])).unwrap_err().to_string();
    assert!(e.contains("Linear") && e.contains("[3, 5]"), "{e}");
    assert!(Linear::new(0, 2).is_err());
    Ok(())
}
