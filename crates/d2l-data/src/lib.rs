//! d2l-rs data (D2L 3.1–3.3, 3.5, 4.4, 4.10, 5.5, 8.2–8.3): the `Dataset` trait and a
//! prefetching `DataLoader`, the data hub (resolve, download, verify, extract), the book's
//! data sets, the built-in offline `shapes` set, image transforms and text basics.

pub mod airfoil;
pub mod archive;
pub mod datasets;
pub mod error;
pub mod house;
pub mod hub;
pub mod idx;
pub mod loader;
pub mod ngram;
pub mod seq;
pub mod shapes;
pub mod synthetic;
pub mod text;
pub mod transforms;

pub use datasets::{
    load_data_fashion_mnist, load_data_mnist, load_data_shapes, load_image_classification,
    load_kaggle_house, load_time_machine, DatasetName, ImageDataset, Notice,
};
pub use error::{DataError, Result};
