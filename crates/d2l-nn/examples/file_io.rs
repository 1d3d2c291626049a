//! D2L 5.5 (File I/O): save and load a tensor, a list and a dictionary of tensors, and
//! an MLP's parameters, in the safetensors format PyTorch also reads.
//!
//! Run with `cargo run -p d2l-nn --example file_io [DIR]`; the files go to DIR (default:
//! a fresh folder under the system temp directory).

use d2l_nn::layers::Linear;
use d2l_nn::module::Module;
use d2l_nn::serialize;
use d2l_tensor::{manual_seed, Result, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The book's MLP: hidden = Linear(20, 256), output = Linear(256, 10).
struct Mlp {
    hidden: Arc<Linear>,
    output: Arc<Linear>,
}

impl Mlp {
    fn new() -> Result<Self> {
        Ok(Mlp {
            hidden: Arc::new(Linear::new(20, 256)?),
            output: Arc::new(Linear::new(256, 10)?),
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.output.forward(&self.hidden.forward(x)?.relu()?)
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("hidden".into(), self.hidden.clone()),
            ("output".into(), self.output.clone()),
        ]
    }
}

fn main() -> Result<()> {
    manual_seed(0);
    let dir = match std::env::args().nth(1) {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("d2l-file-io-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).expect("create the output directory");

    // 5.5.1 Loading and saving tensors.
    let x = Tensor::arange(0.0, 4.0, 1.0)?;
    serialize::save_tensor(dir.join("x-file"), &x)?; // torch.save(x, 'x-file')
    let x2 = serialize::load_tensor(dir.join("x-file"))?; // x2 = torch.load('x-file')
    println!("x2 = {:?}", x2.to_vec::<f32>());

    let y = Tensor::zeros(&[4]);
    serialize::save_list(dir.join("x-files"), &[x.clone(), y.clone()])?; // torch.save([x, y], 'x-files')
    let xy = serialize::load_list(dir.join("x-files"))?; // x2, y2 = torch.load('x-files')
    println!(
        "(x2, y2) = ({:?}, {:?})",
        xy[0].to_vec::<f32>(),
        xy[1].to_vec::<f32>()
    );

    let mydict = BTreeMap::from([("x".to_string(), x.clone()), ("y".to_string(), y.clone())]);
    serialize::save_dict(dir.join("mydict"), &mydict)?; // torch.save(mydict, 'mydict')
    let mydict2 = serialize::load_dict(dir.join("mydict"))?; // mydict2 = torch.load('mydict')
    for (k, v) in &mydict2 {
        println!("mydict2[{k:?}] = {:?}", v.to_vec::<f32>());
    }

    // 5.5.2 Loading and saving model parameters.
    let net = Mlp::new()?;
    let xin = Tensor::randn(&[2, 20]);
    let yout = net.forward(&xin)?;
    let params = dir.join("mlp.params");
    serialize::save_state_dict(&net, &params)?; // torch.save(net.state_dict(), 'mlp.params')
    for (name, t) in serialize::load(&params)? {
        println!("{name}: {:?}", t.shape());
    }

    let clone = Mlp::new()?; // clone = MLP()
    let report = serialize::load_state_dict(&clone, &params, true)?; // clone.load_state_dict(...)
    println!("loaded {} tensors; {report}", report.loaded.len());
    clone.eval();
    let y_clone = clone.forward(&xin)?;
    let same = y_clone.to_vec::<f32>() == yout.to_vec::<f32>();
    println!("Y_clone == Y: {same}");
    assert!(same);
    println!("files written to {}", dir.display());
    Ok(())
}
