//! The vision toolkit of D2L chapter 13.
//!
//! - [`image`]: decode JPEG/PNG into `uint8` CHW tensors and write tensors back as PNG.
//! - [`detection`]: box conversions, IoU, anchors (`multibox_prior`), anchor labelling
//!   (`multibox_target`), NMS and `multibox_detection` (13.3–13.5).
//! - [`roi`]: RoI pooling and RoI align with gradients (13.8).
//! - [`transforms`]: seeded image augmentation with torchvision's names and sampling
//!   (flips, `RandomResizedCrop`, `ColorJitter`, …) and an augmenting data-set wrapper (13.1,
//!   13.2) — a re-export of the one transform stack, `d2l_data::transforms`.
//! - [`cifar`]: CIFAR-10 from its binary release, data set and loaders (13.1).
//! - [`folder`]: image classification folders (torchvision's `ImageFolder`), the hot-dog
//!   set and torchvision's pretrained weights through the data hub (13.2).
//! - [`bananas`]: the banana-detection reader and a detection set the program generates
//!   in the same layout, so that everything runs offline (13.6).
//! - [`style`]: neural style transfer's losses (content, Gram/style, total variation,
//!   the book's weighted total and its list-repetition quirk), ImageNet pre/postprocessing
//!   and feature extraction at VGG-19's style/content layers (13.12).
//! - [`upsample`]: transposed convolution from scratch (`trans_conv`, `kernel2matrix`,
//!   13.10) and bilinear upsampling with the book's `bilinear_kernel` (13.11).
//! - [`voc`]: Pascal VOC2012 semantic segmentation (colour map, reader, random crops, data
//!   set and loaders) and a generated set in the same layout (13.9).
//! - [`draw`]: boxes with labels drawn onto an image (the book's `show_bboxes`) and image
//!   grids, with the embedded font that `d2l-train`'s plots use too.

pub mod bananas;
pub mod cifar;
pub mod detection;
pub mod draw;
pub mod folder;
pub mod image;
pub mod roi;
mod splitmix;
pub mod style;
pub mod transforms;
pub mod upsample;
pub mod voc;

pub use d2l_tensor::{Error, Result, Tensor};
