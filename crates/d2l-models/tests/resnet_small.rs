//! D2L 12.6 / 13.1 `d2l.resnet18(num_classes, in_channels)` (D.8): parameter count and
//! shapes of the small-image ResNet-18.

use d2l_models::cnn::resnet18_small;
use d2l_models::zoo::BuildConfig;
use d2l_nn::Module;
use d2l_tensor::{no_grad, Tensor};

#[test]
fn book_parameter_count_and_output_shape() {
    let net = resnet18_small(&BuildConfig::new(&[3, 32, 32], 10)).unwrap();
    assert_eq!(net.num_parameters(), 11_176_970);
    let mut cfg = BuildConfig::new(&[1, 28, 28], 10);
    cfg.width_mult = 0.125;
    let small = resnet18_small(&cfg).unwrap();
    let y = no_grad(|| small.forward(&Tensor::zeros(&[2, 1, 28, 28]))).unwrap();
    assert_eq!(y.shape(), &[2, 10]);
    let err = match resnet18_small(&BuildConfig::new(&[28, 28], 10)) {
        Ok(_) => panic!("a 2-D input shape was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("[C, H, W]"), "{err}");
}
