//! Image augmentation (D2L 13.1–13.2) lives with the rest of the transform stack in
//! [`d2l_data::transforms`]; this module re-exports it, so `d2l_vision::transforms::*`
//! keeps working.

pub use d2l_data::transforms::*;
