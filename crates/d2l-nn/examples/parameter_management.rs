//! D2L 5.2 (Parameter Management): access, initialisation, and sharing.
//!
//! Run: `cargo run -p d2l-nn --example parameter_management`

use d2l_nn::init;
use d2l_nn::layers::{Linear, ReLU};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{manual_seed, Result, Tensor};
use std::sync::Arc;

fn main() -> Result<()> {
    manual_seed(0);
    let net = Sequential::new()
        .add(Linear::new(4, 8)?)
        .add(ReLU)
        .add(Linear::new(8, 1)?);
    let x = Tensor::rand(&[2, 4]);
    net.forward(&x)?;

    // 5.2.1 Parameter access.
    let out = net.get_as::<Linear>(2).expect("layer 2 is a Linear");
    println!(
        "net[2] weight {:?}, bias {}",
        out.weight.shape(),
        out.bias.as_ref().unwrap()
    );
    println!(
        "net[2].weight.grad is None: {}",
        out.weight.grad().is_none()
    );
    for (name, p) in net.named_parameters() {
        println!("  {name}: {:?}", p.shape());
    }
    println!("parameters in total: {}", net.num_parameters());

    // 5.2.2 Initialisation: built-in, per module type, and custom.
    net.apply(&mut |m: &dyn Module| {
        if let Some(l) = m.as_any().downcast_ref::<Linear>() {
            init::normal_(&l.weight, 0.0, 0.01)?;
            init::zeros_(l.bias.as_ref().unwrap())?;
        }
        Ok(())
    })?;
    println!(
        "after init_normal: 0.weight[0] = {}",
        net.parameter("0.weight")?.select(0, 0)?
    );
    init::xavier_uniform_(&net.parameter("0.weight")?, 1.0)?;
    init::constant_(&net.parameter("2.weight")?, 42.0)?;
    println!(
        "xavier net[0].weight[0] = {}",
        net.parameter("0.weight")?.select(0, 0)?
    );
    println!("constant net[2].weight = {}", net.parameter("2.weight")?);
    init::custom_(&net.parameter("0.weight")?, |shape| {
        let w = Tensor::uniform(shape, -10.0, 10.0)?;
        w.mul(&w.abs()?.ge_scalar(5.0)?.to_dtype(d2l_tensor::DType::F32)?)
    })?;
    println!(
        "my_init net[0].weight[:2] = {}",
        net.parameter("0.weight")?.narrow(0, 0, 2)?
    );

    // 5.2.3 Tied parameters: one layer object used twice.
    let shared: Arc<dyn Module> = Arc::new(Linear::new(8, 8)?);
    let net = Sequential::new()
        .add(Linear::new(4, 8)?)
        .add(ReLU)
        .add_shared(shared.clone())
        .add(ReLU)
        .add_shared(shared)
        .add(ReLU)
        .add(Linear::new(8, 1)?);
    net.forward(&x)?;
    let (w2, w4) = (
        net.get(2).unwrap().parameters()[0].clone(),
        net.get(4).unwrap().parameters()[0].clone(),
    );
    init::constant_(&w2, 100.0)?;
    println!(
        "tied: net[2].weight[0,0] == net[4].weight[0,0]: {}",
        w2.select(0, 0)?.select(0, 0)?.item()? == w4.select(0, 0)?.select(0, 0)?.item()?
    );
    println!(
        "shared layer listed once: {} parameter tensors",
        net.parameters().len()
    );
    Ok(())
}
