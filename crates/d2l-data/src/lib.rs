//! d2l-rs data (D2L 3.1–3.3, 3.5, 4.4, 4.10, 5.5, 8.2): the `Dataset` trait and a
//! prefetching `DataLoader`, the data hub (resolve, download, verify, extract), the book's
//! data sets, the built-in offline `shapes` set, image transforms and text basics.

pub mod error;
pub mod hub;
pub mod archive;
pub mod loader;
pub mod synthetic;
pub mod idx;
pub mod transforms;
pub mod house;
pub mod shapes;
pub mod text;

pub use error::{DataError, Result};
