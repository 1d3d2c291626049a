//! The op codes the CUDA kernels switch on, defined once.
//!
//! Each table below is both the Rust constants the launchers pass
//! (`unary_op::EXP`, …) and the `#define`s that [`header`] writes in front of
//! `kernels.cu` before NVRTC compiles it (`UNARY_OP_EXP`, …), so the kernels'
//! `switch` statements and the launchers read the same numbers. This module is
//! compiled without the `cuda` feature so that its consistency test runs on
//! every machine.

// Only the real backend (the `cuda` feature) and the tests read the tables, and
// some codes reach the kernels only through `header()`, with no Rust caller yet.
#![allow(dead_code)]

/// Defines one op-code table: a module of `u32` constants plus `ALL`, the
/// `(name, code)` list that [`header`] turns into `#define PREFIX_NAME code`.
macro_rules! op_codes {
    (
        $(#[$meta:meta])*
        $module:ident ($prefix:literal) {
            $( $(#[$doc:meta])* $name:ident = $code:literal, )*
        }
    ) => {
        $(#[$meta])*
        pub(crate) mod $module {
            $( $(#[$doc])* pub(crate) const $name: u32 = $code; )*
            /// The `#define` prefix of this table in the generated header.
            pub(crate) const PREFIX: &str = $prefix;
            /// Every code of this table as `(name, code)`, in definition order.
            pub(crate) const ALL: &[(&str, u32)] = &[$((stringify!($name), $code)),*];
        }
    };
}

op_codes! {
    /// Unary op codes for `unary` (f32/f64; `a`, `b` are scalar parameters)
    /// and `unary_backward`, where codes up to [`unary_op::LAST`] take the
    /// saved INPUT x and the `*_FROM_OUTPUT` codes take the saved OUTPUT y.
    unary_op ("UNARY_OP") {
        /// -x
        NEG = 0,
        /// |x|
        ABS = 1,
        /// e^x
        EXP = 2,
        /// ln x
        LOG = 3,
        /// ln(1+x)
        LOG1P = 4,
        /// √x
        SQRT = 5,
        /// 1/√x
        RSQRT = 6,
        /// sin x
        SIN = 7,
        /// cos x
        COS = 8,
        /// tanh x
        TANH = 9,
        /// 1/(1+e^-x)
        SIGMOID = 10,
        /// max(x, 0) (NaN propagates)
        RELU = 11,
        /// x·Φ(x), exact erf form
        GELU = 12,
        /// x if x > 20 else ln(1+e^x)
        SOFTPLUS = 13,
        /// x if x > 0 else a·x
        LEAKY_RELU = 14,
        /// min(max(x, a), b) (NaN propagates)
        CLAMP = 15,
        /// x^a
        POW_SCALAR = 16,
        /// x + a
        ADD_SCALAR = 17,
        /// x·a
        MUL_SCALAR = 18,
        /// x²
        SQUARE = 19,
        /// 1/x
        RECIPROCAL = 20,
        /// sign(x) ∈ {-1, 0, 1} (NaN propagates)
        SIGN = 21,
        /// Highest forward code.
        LAST = 21,
        /// Backward codes with the saved tensor being the OUTPUT y: g·y.
        EXP_FROM_OUTPUT = 100,
        /// g / (2y)
        SQRT_FROM_OUTPUT = 101,
        /// g·(−y³/2)
        RSQRT_FROM_OUTPUT = 102,
        /// g·(1 − y²)
        TANH_FROM_OUTPUT = 103,
        /// g·y·(1 − y)
        SIGMOID_FROM_OUTPUT = 104,
        /// g·(y > 0)
        RELU_FROM_OUTPUT = 105,
    }
}

op_codes! {
    /// Binary op codes for `binary` (integers: add, sub, mul, maximum and
    /// minimum only, with wrapping arithmetic).
    binary_op ("BINARY_OP") {
        /// a + b (wrapping for integers)
        ADD = 0,
        /// a − b (wrapping for integers)
        SUB = 1,
        /// a·b (wrapping for integers)
        MUL = 2,
        /// a / b (floats only)
        DIV = 3,
        /// a^b (floats only)
        POW = 4,
        /// max(a, b) (NaN propagates)
        MAXIMUM = 5,
        /// min(a, b) (NaN propagates)
        MINIMUM = 6,
    }
}

op_codes! {
    /// Comparison codes for `compare` (output u8 0/1).
    cmp_op ("CMP_OP") {
        /// a == b
        EQ = 0,
        /// a != b
        NE = 1,
        /// a < b
        LT = 2,
        /// a <= b
        LE = 3,
        /// a > b
        GT = 4,
        /// a >= b
        GE = 5,
    }
}

op_codes! {
    /// Reduction kinds for `reduce_rows`.
    reduce_kind ("REDUCE_KIND") {
        /// Sum (f32, f64, i64 with wrapping).
        SUM = 0,
        /// Maximum with argmax (first occurrence; NaN propagates, its index wins).
        MAX = 1,
        /// Minimum with argmin (first occurrence; NaN propagates, its index wins).
        MIN = 2,
    }
}

op_codes! {
    /// Window rules of one pooling axis (`PoolAxis::mode` in kernels.cu).
    pool_mode ("POOL_MODE") {
        /// Max pooling: kernel, stride, padding, dilation.
        MAX = 0,
        /// Average pooling: kernel, stride, padding, whether the padding counts.
        AVG = 1,
        /// Adaptive pooling: `floor(i·len/n) .. ceil((i+1)·len/n)`.
        ADAPTIVE = 2,
    }
}

/// Every table as `(prefix, codes)`.
const TABLES: [(&str, &[(&str, u32)]); 5] = [
    (unary_op::PREFIX, unary_op::ALL),
    (binary_op::PREFIX, binary_op::ALL),
    (cmp_op::PREFIX, cmp_op::ALL),
    (reduce_kind::PREFIX, reduce_kind::ALL),
    (pool_mode::PREFIX, pool_mode::ALL),
];

/// The C header NVRTC compiles in front of `kernels.cu`: one
/// `#define PREFIX_NAME code` per op code, then a `#line` directive so that
/// compiler messages keep the line numbers of `kernels.cu`.
pub(crate) fn header() -> String {
    let mut h = String::from("// Generated from d2l-tensor/src/cuda/op_codes.rs.\n");
    for (prefix, codes) in TABLES {
        for (name, code) in codes {
            h.push_str(&format!("#define {prefix}_{name} {code}\n"));
        }
    }
    h.push_str("#line 1 \"kernels.cu\"\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// `kernels.cu` without its `//` comments (which name the tables in prose).
    fn kernels() -> String {
        include_str!("kernels.cu")
            .lines()
            .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `#define`d names of the header with their values.
    fn defines() -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for line in header().lines().filter(|l| l.starts_with("#define ")) {
            let mut parts = line.split_whitespace().skip(1);
            let (name, value) = (parts.next().unwrap(), parts.next().unwrap());
            let value: u32 = value.parse().unwrap();
            assert!(
                out.insert(name.to_owned(), value).is_none(),
                "{name} is defined twice"
            );
        }
        out
    }

    /// The identifiers made of `A-Z`, `0-9` and `_` that start with `prefix` in `src`.
    fn uses_of(src: &str, prefix: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = src;
        while let Some(at) = rest.find(prefix) {
            let before = &rest[..at];
            let word: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                out.insert(word.clone());
            }
            rest = &rest[at + word.len().max(1)..];
        }
        out
    }

    #[test]
    fn header_defines_each_code_once_with_the_rust_value() {
        let defs = defines();
        let total: usize = TABLES.iter().map(|(_, c)| c.len()).sum();
        assert_eq!(defs.len(), total);
        assert_eq!(defs["UNARY_OP_EXP"], unary_op::EXP);
        assert_eq!(
            defs["UNARY_OP_RELU_FROM_OUTPUT"],
            unary_op::RELU_FROM_OUTPUT
        );
        assert_eq!(defs["BINARY_OP_MINIMUM"], binary_op::MINIMUM);
        assert_eq!(defs["CMP_OP_GE"], cmp_op::GE);
        assert_eq!(defs["REDUCE_KIND_MIN"], reduce_kind::MIN);
        assert_eq!(defs["POOL_MODE_ADAPTIVE"], pool_mode::ADAPTIVE);
        assert!(header().ends_with("#line 1 \"kernels.cu\"\n"));
    }

    #[test]
    fn codes_within_a_table_are_distinct() {
        for (prefix, codes) in TABLES {
            let mut seen = BTreeMap::new();
            for &(name, code) in codes {
                // `LAST` names the highest forward code, an alias by design.
                if prefix == unary_op::PREFIX && name == "LAST" {
                    continue;
                }
                if let Some(other) = seen.insert(code, name) {
                    panic!("{prefix}: {name} and {other} share code {code}");
                }
            }
        }
        let forward = unary_op::ALL.iter().filter(|(_, c)| *c <= unary_op::LAST);
        assert_eq!(forward.map(|(_, c)| *c).max(), Some(unary_op::LAST));
    }

    #[test]
    fn kernels_cu_uses_only_defined_codes_and_no_bare_numbers() {
        let (defs, kernels) = (defines(), kernels());
        let mut used = BTreeSet::new();
        for (prefix, _) in TABLES {
            used.extend(uses_of(&kernels, &format!("{prefix}_")));
        }
        for name in &used {
            assert!(defs.contains_key(name), "kernels.cu uses undefined {name}");
        }
        // Every code is named in kernels.cu, but for the `LAST` alias and the
        // codes kernels.cu handles as the `else` of a test on the others.
        let implicit = ["UNARY_OP_LAST", "POOL_MODE_AVG", "REDUCE_KIND_MIN"];
        for name in defs.keys().filter(|n| !implicit.contains(&n.as_str())) {
            assert!(used.contains(name), "kernels.cu never uses {name}");
        }
        // No switch label is a bare number: the codes come from the header only.
        for (i, line) in kernels.lines().enumerate() {
            if let Some(label) = line.trim_start().strip_prefix("case ") {
                assert!(
                    !label.starts_with(|c: char| c.is_ascii_digit()),
                    "kernels.cu:{}: numeric case label `{}`",
                    i + 1,
                    line.trim()
                );
            }
        }
        for field in ["kind ==", "mode =="] {
            for (i, line) in kernels.lines().enumerate() {
                if let Some(at) = line.find(field) {
                    let rhs = line[at + field.len()..].trim_start();
                    assert!(
                        !rhs.starts_with(|c: char| c.is_ascii_digit()),
                        "kernels.cu:{}: `{field}` compared with a bare number",
                        i + 1
                    );
                }
            }
        }
        // The kernels no longer carry their own copy of the tables.
        for (prefix, _) in TABLES {
            assert!(!kernels.contains(&format!("#define {prefix}_")));
        }
    }
}
