//! D2L 5.3 (Deferred Initialization): layers whose input size is only known once data
//! flows through them.
//!
//! Run: `cargo run -p d2l-nn --example deferred_init`

use d2l_nn::layers::{LazyLinear, ReLU};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{manual_seed, Result, Tensor};

fn main() -> Result<()> {
    manual_seed(0);
    let net = Sequential::new()
        .add(LazyLinear::new(256)?)
        .add(ReLU)
        .add(LazyLinear::new(10)?);
    println!(
        "before the first batch: {} parameter tensors",
        net.parameters().len()
    );
    println!("{}", net.summary_tree());
    let x = Tensor::rand(&[2, 20]);
    net.forward(&x)?;
    println!("after a batch of shape {:?}:", x.shape());
    for (name, p) in net.named_parameters() {
        println!("  {name}: {:?}", p.shape());
    }
    println!("{}", net.summary_tree());
    Ok(())
}
