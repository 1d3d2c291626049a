//! PyTorch-style text rendering of tensors (`print(tensor)`), over plain shape and value data.
//! Mirrors torch/_tensor_str.py with default print options: precision 4, threshold 1000, edgeitems 3, linewidth 80.

/// Digits after the point in fixed and scientific notation (`torch.set_printoptions(precision=4)`).
const PRECISION: usize = 4;
/// Tensors with more elements than this are summarised with `...`.
const THRESHOLD: usize = 1000;
/// Entries kept at each end of a summarised dimension.
const EDGE_ITEMS: usize = 3;
/// Target line width for wrapping long rows and the suffix.
const LINE_WIDTH: usize = 80;

/// How the `f64` values handed to [`format_tensor`] are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// Floating point: `1.`, `0.1235`, `1.2346e+05`, `nan`, `inf`.
    Float,
    /// Integers (values are truncated towards zero): `3`, `-12`.
    Int,
    /// Masks: zero prints `False`, anything else `True` (for a boolean dtype; masks are u8 today).
    #[allow(dead_code)]
    Bool,
}

/// Renders a tensor as PyTorch's `print(tensor)` would.
///
/// `values` are the row-major entries of the full `shape` (one value for a 0-d tensor). A
/// non-empty `suffix` is added as `, <suffix>` before the closing parenthesis, on a new line
/// when it would overflow the line width, as PyTorch does for `dtype=...`.
///
/// # Panics
/// If `values.len()` is not the product of `shape`.
pub(crate) fn format_tensor(
    shape: &[usize],
    values: &[f64],
    kind: ValueKind,
    suffix: &str,
) -> String {
    let numel: usize = shape.iter().product();
    assert_eq!(
        values.len(),
        numel,
        "format_tensor: shape {shape:?} needs {numel} values, got {}",
        values.len()
    );
    const PREFIX: &str = "tensor(";
    let indent = PREFIX.len();
    let body = if numel == 0 {
        "[]".to_string()
    } else {
        let summarize = numel > THRESHOLD;
        let formatter = if summarize {
            let mut kept = Vec::new();
            summarized_values(shape, values, &mut kept);
            Formatter::new(kind, &kept)
        } else {
            Formatter::new(kind, values)
        };
        if shape.is_empty() {
            formatter.format(values[0])
        } else {
            tensor_str(shape, values, indent, summarize, &formatter)
        }
    };
    let mut out = String::with_capacity(PREFIX.len() + body.len() + suffix.len() + 4);
    out.push_str(PREFIX);
    out.push_str(&body);
    if !suffix.is_empty() {
        // PyTorch's `_add_suffixes` measures the last line as its length + 2 (an off-by-two it
        // carries); kept so line breaks land where PyTorch puts them.
        let last_line_len = match out.rfind('\n') {
            Some(i) => out.len() - i + 1,
            None => out.len() + 2,
        };
        if last_line_len + suffix.chars().count() + 2 > LINE_WIDTH {
            out.push_str(",\n");
            out.push_str(&" ".repeat(indent));
        } else {
            out.push_str(", ");
        }
        out.push_str(suffix);
    }
    out.push(')');
    out
}

/// The indices of one dimension that are printed: all, or the first and last `EDGE_ITEMS`
/// with `None` standing for the elided middle.
fn shown_indices(len: usize, summarize: bool) -> Vec<Option<usize>> {
    if summarize && len > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((len - EDGE_ITEMS..len).map(Some))
            .collect()
    } else {
        (0..len).map(Some).collect()
    }
}

/// Collects the entries that a summarised print shows (PyTorch's `get_summarized_data`); the
/// formatter's widths and notation are chosen from these alone.
fn summarized_values(shape: &[usize], values: &[f64], out: &mut Vec<f64>) {
    match shape.split_first() {
        None => out.extend_from_slice(values),
        Some((&len, rest)) => {
            let stride: usize = rest.iter().product();
            for i in shown_indices(len, true).into_iter().flatten() {
                summarized_values(rest, &values[i * stride..(i + 1) * stride], out);
            }
        }
    }
}

/// `[...]` for a tensor of at least one dimension whose opening bracket sits after `indent` columns.
fn tensor_str(
    shape: &[usize],
    values: &[f64],
    indent: usize,
    summarize: bool,
    f: &Formatter,
) -> String {
    if shape.len() == 1 {
        return vector_str(values, indent, summarize, f);
    }
    let stride: usize = shape[1..].iter().product();
    let slices: Vec<String> = shown_indices(shape[0], summarize)
        .into_iter()
        .map(|i| match i {
            Some(i) => tensor_str(
                &shape[1..],
                &values[i * stride..(i + 1) * stride],
                indent + 1,
                summarize,
                f,
            ),
            None => "...".to_string(),
        })
        .collect();
    let separator = format!(
        ",{}{}",
        "\n".repeat(shape.len() - 1),
        " ".repeat(indent + 1)
    );
    format!("[{}]", slices.join(&separator))
}

/// One innermost row, wrapped to the line width like PyTorch's `_vector_str`.
fn vector_str(values: &[f64], indent: usize, summarize: bool, f: &Formatter) -> String {
    // Each entry takes its width plus ", ".
    let element_length = f.max_width + 2;
    let per_line = (LINE_WIDTH.saturating_sub(indent) / element_length).max(1);
    let data: Vec<String> = shown_indices(values.len(), summarize)
        .into_iter()
        .map(|i| match i {
            Some(i) => f.format(values[i]),
            None => " ...".to_string(),
        })
        .collect();
    let lines: Vec<String> = data.chunks(per_line).map(|line| line.join(", ")).collect();
    let separator = format!(",\n{}", " ".repeat(indent + 1));
    format!("[{}]", lines.join(&separator))
}

/// PyTorch's `_Formatter`: one notation and one width shared by every printed entry.
struct Formatter {
    kind: ValueKind,
    /// Floats that are all integral print as `3.` (PyTorch's `int_mode`).
    int_mode: bool,
    sci_mode: bool,
    max_width: usize,
}

impl Formatter {
    fn new(kind: ValueKind, values: &[f64]) -> Formatter {
        let mut f = Formatter {
            kind,
            int_mode: true,
            sci_mode: false,
            max_width: 1,
        };
        if kind != ValueKind::Float {
            f.max_width = values
                .iter()
                .map(|&v| f.format_unpadded(v).len())
                .max()
                .unwrap_or(1)
                .max(1);
            return f;
        }
        // Notation and width depend on the finite non-zero entries only; nan/inf/0 never widen it.
        let nonzero_finite: Vec<f64> = values
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v != 0.0)
            .collect();
        if nonzero_finite.is_empty() {
            return f;
        }
        let abs_max = nonzero_finite.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let abs_min = nonzero_finite
            .iter()
            .fold(f64::INFINITY, |m, v| m.min(v.abs()));
        f.int_mode = nonzero_finite.iter().all(|v| *v == v.ceil());
        // PyTorch's rule: scientific when the magnitudes span more than 1000x, exceed 1e8, or
        // (for non-integral values) fall below 1e-4.
        f.sci_mode =
            abs_max / abs_min > 1000.0 || abs_max > 1.0e8 || (!f.int_mode && abs_min < 1.0e-4);
        f.max_width = nonzero_finite
            .iter()
            .map(|&v| f.format_unpadded(v).len())
            .max()
            .unwrap_or(1);
        f
    }

    fn format_unpadded(&self, v: f64) -> String {
        match self.kind {
            ValueKind::Int => format!("{}", v as i64),
            ValueKind::Bool => (if v != 0.0 { "True" } else { "False" }).to_string(),
            ValueKind::Float => {
                if v.is_nan() {
                    "nan".to_string()
                } else if v.is_infinite() {
                    (if v > 0.0 { "inf" } else { "-inf" }).to_string()
                } else if self.sci_mode {
                    python_sci(v, PRECISION)
                } else if self.int_mode {
                    format!("{v:.0}.")
                } else {
                    format!("{v:.PRECISION$}")
                }
            }
        }
    }

    /// The entry right-aligned to the shared width (longer entries, e.g. `nan` among `1.`, are not cut).
    fn format(&self, v: f64) -> String {
        let s = self.format_unpadded(v);
        let pad = self.max_width.saturating_sub(s.len());
        format!("{}{s}", " ".repeat(pad))
    }
}

/// Python's `'{:.Ne}'` format: `1.2346e+05`, exponent signed and at least two digits.
fn python_sci(v: f64, precision: usize) -> String {
    let s = format!("{v:.precision$e}");
    let (mantissa, exp) = s.split_once('e').expect("Rust's {:e} output contains 'e'");
    let exp: i32 = exp.parse().expect("Rust's {:e} exponent is an integer");
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ValueKind::{Bool, Float, Int};

    fn f(shape: &[usize], values: &[f64]) -> String {
        format_tensor(shape, values, Float, "")
    }

    fn arange(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64).collect()
    }

    // Expected strings are what PyTorch 2.x prints for the tensor named in each comment.

    #[test]
    fn integral_floats_2d_and_suffix() {
        // torch.tensor([[1., 2.], [3., 4.]])
        assert_eq!(
            f(&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            "tensor([[1., 2.],\n        [3., 4.]])"
        );
        assert_eq!(
            format_tensor(&[2, 2], &[1.0, 2.0, 3.0, 4.0], Float, "shape=[2, 2]"),
            "tensor([[1., 2.],\n        [3., 4.]], shape=[2, 2])"
        );
        // torch.tensor([-2., 0., 10.])
        assert_eq!(f(&[3], &[-2.0, 0.0, 10.0]), "tensor([-2.,  0., 10.])");
        // torch.zeros(2); torch.tensor([-0.])
        assert_eq!(f(&[2], &[0.0, 0.0]), "tensor([0., 0.])");
        assert_eq!(f(&[1], &[-0.0]), "tensor([-0.])");
        // torch.tensor([1., 1000.]): a ratio of exactly 1000 stays in integer notation.
        assert_eq!(f(&[2], &[1.0, 1000.0]), "tensor([   1., 1000.])");
        // torch.tensor([1e8]): 1e8 itself is not above the limit.
        assert_eq!(f(&[1], &[1.0e8]), "tensor([100000000.])");
    }

    #[test]
    fn fixed_notation_four_decimals() {
        // torch.tensor([0.123456, 1.5], dtype=torch.float64)
        assert_eq!(f(&[2], &[0.123456, 1.5]), "tensor([0.1235, 1.5000])");
        // torch.tensor([-1.5, 2.25, 10.0, 0.0])
        assert_eq!(
            f(&[4], &[-1.5, 2.25, 10.0, 0.0]),
            "tensor([-1.5000,  2.2500, 10.0000,  0.0000])"
        );
        // torch.tensor([[0.5, -0.25], [100.125, 3.0]])
        assert_eq!(
            f(&[2, 2], &[0.5, -0.25, 100.125, 3.0]),
            "tensor([[  0.5000,  -0.2500],\n        [100.1250,   3.0000]])"
        );
    }

    #[test]
    fn scientific_notation_rules() {
        // torch.tensor([123456.789, 654321.5]): non-integral, within 1000x, below 1e8 -> fixed.
        assert_eq!(
            f(&[2], &[123456.789, 654321.5]),
            "tensor([123456.7890, 654321.5000])"
        );
        // torch.tensor([5e-5, 6e-5]): smallest magnitude below 1e-4.
        assert_eq!(f(&[2], &[5e-5, 6e-5]), "tensor([5.0000e-05, 6.0000e-05])");
        // torch.tensor([1.5e9, 2.5e9]): integral but above 1e8.
        assert_eq!(f(&[2], &[1.5e9, 2.5e9]), "tensor([1.5000e+09, 2.5000e+09])");
        // torch.tensor([123456.789, 1.5]): magnitudes span more than 1000x.
        assert_eq!(
            f(&[2], &[123456.789, 1.5]),
            "tensor([1.2346e+05, 1.5000e+00])"
        );
        // torch.tensor([0.001, 1.5]) and torch.tensor([1., 2000.]): the same ratio rule.
        assert_eq!(f(&[2], &[0.001, 1.5]), "tensor([1.0000e-03, 1.5000e+00])");
        assert_eq!(f(&[2], &[1.0, 2000.0]), "tensor([1.0000e+00, 2.0000e+03])");
        // torch.tensor([-1e-5, 0., 2e-5]): zero and negatives in scientific notation.
        assert_eq!(
            f(&[3], &[-1e-5, 0.0, 2e-5]),
            "tensor([-1.0000e-05,  0.0000e+00,  2.0000e-05])"
        );
        // torch.tensor([1e-300, 1e300], dtype=torch.float64): three-digit exponents.
        assert_eq!(
            f(&[2], &[1e-300, 1e300]),
            "tensor([1.0000e-300, 1.0000e+300])"
        );
    }

    #[test]
    fn non_finite_values() {
        // torch.tensor([1.5, inf, nan, -inf])
        assert_eq!(
            f(&[4], &[1.5, f64::INFINITY, f64::NAN, f64::NEG_INFINITY]),
            "tensor([1.5000,    inf,    nan,   -inf])"
        );
        // torch.tensor([1., nan]): nan/inf do not widen the columns.
        assert_eq!(f(&[2], &[1.0, f64::NAN]), "tensor([1., nan])");
        // torch.tensor([nan]); torch.tensor([0., -inf])
        assert_eq!(f(&[1], &[f64::NAN]), "tensor([nan])");
        assert_eq!(f(&[2], &[0.0, f64::NEG_INFINITY]), "tensor([0., -inf])");
        // torch.tensor([1e-5, nan])
        assert_eq!(
            f(&[2], &[1e-5, f64::NAN]),
            "tensor([1.0000e-05,        nan])"
        );
    }

    #[test]
    fn ints_and_bools() {
        // torch.tensor([1, -20, 300])
        assert_eq!(
            format_tensor(&[3], &[1.0, -20.0, 300.0], Int, ""),
            "tensor([  1, -20, 300])"
        );
        // torch.tensor([[1, 2], [3, 4]], dtype=torch.int32)
        assert_eq!(
            format_tensor(&[2, 2], &[1.0, 2.0, 3.0, 4.0], Int, "dtype=torch.int32"),
            "tensor([[1, 2],\n        [3, 4]], dtype=torch.int32)"
        );
        // torch.tensor([True, False])
        assert_eq!(
            format_tensor(&[2], &[1.0, 0.0], Bool, ""),
            "tensor([ True, False])"
        );
        // torch.tensor([True, True])
        assert_eq!(
            format_tensor(&[2], &[1.0, 1.0], Bool, ""),
            "tensor([True, True])"
        );
    }

    #[test]
    fn scalars_and_empty() {
        // torch.tensor(3.5); torch.tensor(3.); torch.tensor(7); torch.tensor(True)
        assert_eq!(f(&[], &[3.5]), "tensor(3.5000)");
        assert_eq!(f(&[], &[3.0]), "tensor(3.)");
        assert_eq!(f(&[], &[f64::NEG_INFINITY]), "tensor(-inf)");
        assert_eq!(format_tensor(&[], &[7.0], Int, ""), "tensor(7)");
        assert_eq!(format_tensor(&[], &[1.0], Bool, ""), "tensor(True)");
        assert_eq!(
            format_tensor(&[], &[2.5], Float, "shape=[]"),
            "tensor(2.5000, shape=[])"
        );
        // torch.tensor([]); shapes with a zero extent print the same brackets.
        assert_eq!(f(&[0], &[]), "tensor([])");
        assert_eq!(f(&[2, 0, 3], &[]), "tensor([])");
        assert_eq!(
            format_tensor(&[0], &[], Int, "shape=[0]"),
            "tensor([], shape=[0])"
        );
    }

    #[test]
    fn three_dimensional_blocks() {
        // torch.arange(8.).reshape(2, 2, 2)
        assert_eq!(
            f(&[2, 2, 2], &arange(8)),
            "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]])"
        );
        // torch.arange(4).reshape(2, 1, 1, 2): two blank lines separate 4-D blocks.
        assert_eq!(
            format_tensor(&[2, 1, 1, 2], &arange(4), Int, ""),
            "tensor([[[[0, 1]]],\n\n\n        [[[2, 3]]]])"
        );
    }

    #[test]
    fn summarised_1d() {
        // torch.arange(1001.): widths come from the shown entries only.
        assert_eq!(
            f(&[1001], &arange(1001)),
            "tensor([   0.,    1.,    2.,  ...,  998.,  999., 1000.])"
        );
        // Exactly 1000 elements are not summarised (threshold is "more than 1000").
        let s = f(&[1000], &arange(1000));
        assert!(!s.contains("..."));
        assert!(s.ends_with("999.])"));
    }

    #[test]
    fn summarised_2d() {
        // torch.arange(2000).reshape(40, 50)
        let expected = "tensor([[   0,    1,    2,  ...,   47,   48,   49],
        [  50,   51,   52,  ...,   97,   98,   99],
        [ 100,  101,  102,  ...,  147,  148,  149],
        ...,
        [1850, 1851, 1852,  ..., 1897, 1898, 1899],
        [1900, 1901, 1902,  ..., 1947, 1948, 1949],
        [1950, 1951, 1952,  ..., 1997, 1998, 1999]])";
        assert_eq!(format_tensor(&[40, 50], &arange(2000), Int, ""), expected);
        // torch.zeros(1001, 2): short rows stay whole, only the long dimension is cut.
        let expected = "tensor([[0., 0.],
        [0., 0.],
        [0., 0.],
        ...,
        [0., 0.],
        [0., 0.],
        [0., 0.]])";
        assert_eq!(f(&[1001, 2], &vec![0.0; 2002]), expected);
    }

    #[test]
    fn summarised_3d() {
        // torch.zeros(7, 1, 150)
        let row = "[[0., 0., 0.,  ..., 0., 0., 0.]]";
        let block = |r: &str| format!("{r},\n\n        ");
        let expected = format!(
            "tensor([{}{}{}...,\n\n        {}{}{row}])",
            block(row),
            block(row),
            block(row),
            block(row),
            block(row)
        );
        assert_eq!(f(&[7, 1, 150], &vec![0.0; 1050]), expected);
    }

    #[test]
    fn long_rows_wrap_at_80_columns() {
        // torch.arange(20.): 14 entries of width 3 (+2) fit after the 7-column indent.
        assert_eq!(
            f(&[20], &arange(20)),
            "tensor([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n        14., 15., 16., 17., 18., 19.])"
        );
        // torch.arange(40.).reshape(2, 20): continuation lines align under the first entry.
        assert_eq!(
            f(&[2, 20], &arange(40)),
            "tensor([[ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n         14., 15., 16., 17., 18., 19.],\n        [20., 21., 22., 23., 24., 25., 26., 27., 28., 29., 30., 31., 32., 33.,\n         34., 35., 36., 37., 38., 39.]])"
        );
    }

    #[test]
    fn long_suffix_moves_to_its_own_line() {
        // "tensor([1., 2.]" counts as 17 columns in PyTorch's measure; 17 + 61 + 2 = 80 fits.
        let fits = "x".repeat(61);
        assert_eq!(
            format_tensor(&[2], &[1.0, 2.0], Float, &fits),
            format!("tensor([1., 2.], {fits})")
        );
        let too_long = "x".repeat(62);
        assert_eq!(
            format_tensor(&[2], &[1.0, 2.0], Float, &too_long),
            format!("tensor([1., 2.],\n       {too_long})")
        );
    }

    #[test]
    #[should_panic(expected = "needs 4 values, got 3")]
    fn mismatched_lengths_panic() {
        f(&[2, 2], &[1.0, 2.0, 3.0]);
    }
}
