//! d2l-rs, *Dive into Deep Learning* in Rust: one crate to depend on. `use d2l::prelude::*`
//! brings in what the book's code uses; the layers are re-exported by name.

pub use d2l_book as book;
pub use d2l_data as data;
pub use d2l_models as models;
pub use d2l_nn as nn;
pub use d2l_tensor as tensor;
pub use d2l_train as train;
pub use d2l_vision as vision;

/// The README's Rust snippets, compiled and run as doc-tests, so that the first code a
/// reader copies keeps working.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// What a D2L reader's code needs, in one import.
pub mod prelude {
    pub use d2l_nn::init;
    pub use d2l_nn::layers::*;
    pub use d2l_nn::loss::{
        self, cross_entropy, cross_entropy_with, mse_loss, mse_loss_with, CrossEntropyOptions,
        Reduction,
    };
    pub use d2l_nn::optim::{Adam, AdamW, Optimizer, ParamGroup, Sgd};
    pub use d2l_nn::{Module, Sequential};
    pub use d2l_tensor::{
        manual_seed, no_grad, num_gpus, try_all_gpus, try_gpu, DType, Device, Generator, Result,
        Tensor,
    };
    pub use d2l_vision::detection::{
        box_center_to_corner, box_corner_to_center, box_iou, multibox_detection, multibox_prior,
        multibox_target, nms,
    };
    pub use d2l_vision::image::{read_image, write_png};
    pub use d2l_vision::roi::{roi_align, roi_pool};
    pub use d2l_vision::transforms::{Compose, ImageTransform};
}
