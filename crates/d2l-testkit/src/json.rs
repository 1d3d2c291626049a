//! Tensors of the PyTorch fixtures stored as JSON: `{"shape": [..], "data": [..]}` (the
//! data flat, row-major).

use d2l_tensor::Tensor;
use serde_json::Value;

/// Reads and parses the JSON fixture at `path`, naming the script that makes it when the
/// file is missing.
pub fn load(path: &str, script: &str) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (run {script})"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An array of whole numbers (a shape, paddings, …).
pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("fixture: expected an array of whole numbers")
        .iter()
        .map(|d| {
            d.as_u64()
                .expect("fixture: expected non-negative whole numbers") as usize
        })
        .collect()
}

/// The `"shape"` of a fixture tensor.
pub fn shape(v: &Value) -> Vec<usize> {
    usizes(&v["shape"])
}

/// The `"data"` of a fixture tensor, as f64.
pub fn data(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .expect("fixture: data must be an array")
        .iter()
        .map(|x| x.as_f64().expect("fixture: data entries must be numbers"))
        .collect()
}

/// The first two whole numbers of an array `[a, b, …]` (a kernel size, a stride, …).
pub fn pair(v: &Value) -> (usize, usize) {
    let a = usizes(v);
    (a[0], a[1])
}

/// A fixture tensor as an f64 tensor.
pub fn tensor(v: &Value) -> Tensor {
    Tensor::from_vec(data(v), &shape(v)).unwrap()
}
