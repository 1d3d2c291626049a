//! The d2l-rs model zoo (D2L chapters 3–4 and the CNNs of chapters 6–7; chapter 13
//! later): each model built exactly as the book builds it, with the book's recipe.

pub mod bn_scratch;
pub mod cnn;
pub mod fcn;
pub mod phm;
pub mod recipe;
pub mod rnn_lm;
pub mod scratch;
pub mod ssd;
pub mod summary;
pub mod torchvision;
pub mod zoo;
