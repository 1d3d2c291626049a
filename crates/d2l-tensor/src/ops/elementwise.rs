//! Elementwise ops with NumPy/PyTorch broadcasting (D2L 2.1.2–2.1.3), activation
//! functions (D2L 5.1) and comparisons that produce 0/1 `u8` masks.

use crate::backprop::Op;
use crate::cpu;
use crate::dtype::Float;
use crate::error::{Error, Result};
use crate::layout::broadcast_shapes;
use crate::storage::CpuStorage;
use crate::{DType, Tensor};

/// An elementwise function of one tensor (parameters included), each with a derivative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    /// -x
    Neg,
    /// |x|
    Abs,
    /// e^x
    Exp,
    /// ln x
    Log,
    /// ln(1 + x)
    Log1p,
    /// √x
    Sqrt,
    /// 1/√x
    Rsqrt,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// tanh x
    Tanh,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// max(x, 0)
    Relu,
    /// x·Φ(x), the exact (erf) form
    Gelu,
    /// ln(1 + e^x), linear above 20 as in PyTorch
    Softplus,
    /// x if x > 0 else slope·x
    LeakyRelu(f64),
    /// min(max(x, lo), hi)
    Clamp(f64, f64),
    /// x^p
    PowScalar(f64),
    /// x + c
    AddScalar(f64),
    /// c·x
    MulScalar(f64),
}

impl UnaryOp {
    fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::Softplus => "softplus",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
            UnaryOp::Clamp(..) => "clamp",
            UnaryOp::PowScalar(_) => "pow",
            UnaryOp::AddScalar(_) => "add",
            UnaryOp::MulScalar(_) => "mul",
        }
    }

    /// Whether the derivative is cheapest from the output (true) or the input (false).
    pub(crate) fn grad_from_output(self) -> bool {
        matches!(
            self,
            UnaryOp::Exp | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Sqrt | UnaryOp::Rsqrt
        )
    }
}

#[inline(always)]
fn sigmoid<T: Float>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

fn apply_unary<T: Float>(op: UnaryOp, x: &[T], l: &crate::Layout) -> Vec<T> {
    if matches!(op, UnaryOp::Sigmoid | UnaryOp::Tanh) && l.is_contiguous() {
        if let Some(xf) = crate::cpu::simd::as_f32(x) {
            let kernel = if op == UnaryOp::Sigmoid {
                crate::cpu::simd::sigmoid_f32
            } else {
                crate::cpu::simd::tanh_f32
            };
            let out: Vec<f32> = cpu::map_contiguous(xf, l, kernel);
            return crate::cpu::simd::vec_from_f32(out);
        }
    }
    let z = T::ZERO;
    match op {
        UnaryOp::Neg => cpu::unary(x, l, |v: T| -v),
        UnaryOp::Abs => cpu::unary(x, l, |v: T| v.abs()),
        UnaryOp::Exp => cpu::unary(x, l, |v: T| v.exp()),
        UnaryOp::Log => cpu::unary(x, l, |v: T| v.ln()),
        UnaryOp::Log1p => cpu::unary(x, l, |v: T| v.ln_1p()),
        UnaryOp::Sqrt => cpu::unary(x, l, |v: T| v.sqrt()),
        UnaryOp::Rsqrt => cpu::unary(x, l, |v: T| T::ONE / v.sqrt()),
        UnaryOp::Sin => cpu::unary(x, l, |v: T| v.sin()),
        UnaryOp::Cos => cpu::unary(x, l, |v: T| v.cos()),
        UnaryOp::Tanh => cpu::unary(x, l, |v: T| v.tanh()),
        UnaryOp::Sigmoid => cpu::unary(x, l, sigmoid),
        UnaryOp::Relu => cpu::unary(x, l, |v: T| if v > z { v } else { z }),
        UnaryOp::Gelu => {
            let (h, c) = (T::of(0.5), T::of(FRAC_1_SQRT_2));
            cpu::unary(x, l, move |v: T| h * v * (T::ONE + (v * c).erf()))
        }
        UnaryOp::Softplus => {
            let t = T::of(20.0);
            cpu::unary(x, l, move |v: T| if v > t { v } else { v.exp().ln_1p() })
        }
        UnaryOp::LeakyRelu(s) => {
            let s = T::of(s);
            cpu::unary(x, l, move |v: T| if v > z { v } else { v * s })
        }
        UnaryOp::Clamp(lo, hi) => {
            let (lo, hi) = (T::of(lo), T::of(hi));
            cpu::unary(x, l, move |v: T| {
                if v.is_nan() {
                    v
                } else if v < lo {
                    lo
                } else if v > hi {
                    hi
                } else {
                    v
                }
            })
        }
        UnaryOp::PowScalar(p) => {
            if p == 2.0 {
                cpu::unary(x, l, |v: T| v * v)
            } else {
                let p = T::of(p);
                cpu::unary(x, l, move |v: T| v.powf(p))
            }
        }
        UnaryOp::AddScalar(c) => {
            let c = T::of(c);
            cpu::unary(x, l, move |v: T| v + c)
        }
        UnaryOp::MulScalar(c) => {
            let c = T::of(c);
            cpu::unary(x, l, move |v: T| v * c)
        }
    }
}

/// `g · f'(s)` in one pass, where `s` is the op's input, or its output for the ops
/// that [`UnaryOp::grad_from_output`].
fn unary_grad<T: Float>(
    op: UnaryOp,
    s: &[T],
    ls: &crate::Layout,
    g: &[T],
    lg: &crate::Layout,
) -> Vec<T> {
    let (z, one) = (T::ZERO, T::ONE);
    match op {
        UnaryOp::Neg => cpu::binary(s, ls, g, lg, |_, g: T| -g),
        UnaryOp::Abs => cpu::binary(s, ls, g, lg, move |x: T, g: T| {
            if x > z {
                g
            } else if x < z {
                -g
            } else {
                z
            }
        }),
        UnaryOp::Exp => cpu::binary(s, ls, g, lg, |y: T, g: T| g * y),
        UnaryOp::Log => cpu::binary(s, ls, g, lg, |x: T, g: T| g / x),
        UnaryOp::Log1p => cpu::binary(s, ls, g, lg, move |x: T, g: T| g / (one + x)),
        UnaryOp::Sqrt => {
            let h = T::of(0.5);
            cpu::binary(s, ls, g, lg, move |y: T, g: T| g * h / y)
        }
        UnaryOp::Rsqrt => {
            let h = T::of(-0.5);
            cpu::binary(s, ls, g, lg, move |y: T, g: T| g * h * y * y * y)
        }
        UnaryOp::Sin => cpu::binary(s, ls, g, lg, |x: T, g: T| g * x.cos()),
        UnaryOp::Cos => cpu::binary(s, ls, g, lg, |x: T, g: T| -(g * x.sin())),
        UnaryOp::Tanh => cpu::binary(s, ls, g, lg, move |y: T, g: T| g * (one - y * y)),
        UnaryOp::Sigmoid => cpu::binary(s, ls, g, lg, move |y: T, g: T| g * y * (one - y)),
        UnaryOp::Relu => cpu::binary(s, ls, g, lg, move |x: T, g: T| if x > z { g } else { z }),
        UnaryOp::Gelu => {
            let (h, c, d) = (T::of(0.5), T::of(FRAC_1_SQRT_2), T::of(FRAC_1_SQRT_2PI));
            cpu::binary(s, ls, g, lg, move |x: T, g: T| {
                let cdf = h * (one + (x * c).erf());
                let pdf = d * (-(h * x * x)).exp();
                g * (cdf + x * pdf)
            })
        }
        UnaryOp::Softplus => {
            let t = T::of(20.0);
            cpu::binary(
                s,
                ls,
                g,
                lg,
                move |x: T, g: T| if x > t { g } else { g * sigmoid(x) },
            )
        }
        UnaryOp::LeakyRelu(sl) => {
            let sl = T::of(sl);
            cpu::binary(
                s,
                ls,
                g,
                lg,
                move |x: T, g: T| if x > z { g } else { g * sl },
            )
        }
        UnaryOp::Clamp(lo, hi) => {
            let (lo, hi) = (T::of(lo), T::of(hi));
            cpu::binary(
                s,
                ls,
                g,
                lg,
                move |x: T, g: T| if x >= lo && x <= hi { g } else { z },
            )
        }
        UnaryOp::PowScalar(p) => {
            let (pt, pm1) = (T::of(p), T::of(p - 1.0));
            if p == 2.0 {
                let two = T::of(2.0);
                cpu::binary(s, ls, g, lg, move |x: T, g: T| g * two * x)
            } else {
                cpu::binary(s, ls, g, lg, move |x: T, g: T| g * pt * x.powf(pm1))
            }
        }
        UnaryOp::AddScalar(_) => cpu::binary(s, ls, g, lg, |_, g: T| g),
        UnaryOp::MulScalar(c) => {
            let c = T::of(c);
            cpu::binary(s, ls, g, lg, move |_, g: T| g * c)
        }
    }
}

/// A binary arithmetic op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
    /// a ^ b
    Pow,
    /// elementwise max (NaN-propagating)
    Maximum,
    /// elementwise min (NaN-propagating)
    Minimum,
}

impl BinaryOp {
    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }
}

/// A comparison producing a 0/1 `u8` mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// a == b
    Eq,
    /// a != b
    Ne,
    /// a < b
    Lt,
    /// a <= b
    Le,
    /// a > b
    Gt,
    /// a >= b
    Ge,
}

fn float_binary<T: Float>(
    op: BinaryOp,
    a: &[T],
    la: &crate::Layout,
    b: &[T],
    lb: &crate::Layout,
) -> Vec<T> {
    match op {
        BinaryOp::Add => cpu::binary(a, la, b, lb, |x: T, y: T| x + y),
        BinaryOp::Sub => cpu::binary(a, la, b, lb, |x: T, y: T| x - y),
        BinaryOp::Mul => cpu::binary(a, la, b, lb, |x: T, y: T| x * y),
        BinaryOp::Div => cpu::binary(a, la, b, lb, |x: T, y: T| x / y),
        BinaryOp::Pow => cpu::binary(a, la, b, lb, |x: T, y: T| x.powf(y)),
        BinaryOp::Maximum => cpu::binary(a, la, b, lb, |x: T, y: T| x.max_nan(y)),
        BinaryOp::Minimum => cpu::binary(a, la, b, lb, |x: T, y: T| x.min_nan(y)),
    }
}

macro_rules! int_binary {
    ($op:expr, $a:expr, $la:expr, $b:expr, $lb:expr, $t:ty) => {
        match $op {
            BinaryOp::Add => Some(cpu::binary($a, $la, $b, $lb, |x: $t, y: $t| {
                x.wrapping_add(y)
            })),
            BinaryOp::Sub => Some(cpu::binary($a, $la, $b, $lb, |x: $t, y: $t| {
                x.wrapping_sub(y)
            })),
            BinaryOp::Mul => Some(cpu::binary($a, $la, $b, $lb, |x: $t, y: $t| {
                x.wrapping_mul(y)
            })),
            BinaryOp::Maximum => Some(cpu::binary($a, $la, $b, $lb, |x: $t, y: $t| x.max(y))),
            BinaryOp::Minimum => Some(cpu::binary($a, $la, $b, $lb, |x: $t, y: $t| x.min(y))),
            BinaryOp::Div | BinaryOp::Pow => None,
        }
    };
}

fn compare<T: crate::Element>(
    op: CmpOp,
    a: &[T],
    la: &crate::Layout,
    b: &[T],
    lb: &crate::Layout,
) -> Vec<u8> {
    match op {
        CmpOp::Eq => cpu::binary(a, la, b, lb, |x: T, y: T| (x == y) as u8),
        CmpOp::Ne => cpu::binary(a, la, b, lb, |x: T, y: T| (x != y) as u8),
        CmpOp::Lt => cpu::binary(a, la, b, lb, |x: T, y: T| (x < y) as u8),
        CmpOp::Le => cpu::binary(a, la, b, lb, |x: T, y: T| (x <= y) as u8),
        CmpOp::Gt => cpu::binary(a, la, b, lb, |x: T, y: T| (x > y) as u8),
        CmpOp::Ge => cpu::binary(a, la, b, lb, |x: T, y: T| (x >= y) as u8),
    }
}

impl Tensor {
    /// Applies an elementwise function (the op behind `exp`, `relu`, ...).
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let _prof = crate::profile::scope(op.name());
        self.expect_float(op.name())?;
        let out = Tensor::native_or(crate::cuda::native::unary(self, op)?, self.device(), || {
            let s = self.storage();
            let l = self.layout();
            match s.cpu() {
                CpuStorage::F32(x) => CpuStorage::F32(apply_unary(op, x, l)),
                CpuStorage::F64(x) => CpuStorage::F64(apply_unary(op, x, l)),
                _ => unreachable!("float checked"),
            }
        })?;
        if !Tensor::tracks(&[self]) {
            return Ok(Tensor::from_parts(out, self.shape(), None));
        }
        Tensor::from_storage_with(out, self.shape(), |y| Op::Unary {
            arg: self.clone(),
            op,
            out: op.grad_from_output().then_some(y),
        })
    }

    /// `g · f'(x)` for a recorded unary op (used by backward).
    pub(crate) fn unary_backward(op: UnaryOp, saved: &Tensor, g: &Tensor) -> Result<Tensor> {
        let _prof = crate::profile::scope("unary_grad");
        let g = g.to_dtype(saved.dtype())?;
        if let Some(out) = crate::cuda::native::unary_backward(op, saved, &g)? {
            return Ok(Tensor::from_parts(out, saved.shape(), None));
        }
        let ss = saved.storage();
        let gs = g.storage();
        let out = match (ss.cpu(), gs.cpu()) {
            (CpuStorage::F32(s), CpuStorage::F32(gv)) => {
                CpuStorage::F32(unary_grad(op, s, saved.layout(), gv, g.layout()))
            }
            (CpuStorage::F64(s), CpuStorage::F64(gv)) => {
                CpuStorage::F64(unary_grad(op, s, saved.layout(), gv, g.layout()))
            }
            _ => unreachable!("float checked"),
        };
        Tensor::from_storage_on(out, saved.shape(), None, saved.device())
    }

    fn broadcast_pair(
        &self,
        op: &'static str,
        rhs: &Tensor,
    ) -> Result<(Vec<usize>, crate::Layout, crate::Layout)> {
        self.same_device(op, rhs)?;
        if self.dtype() != rhs.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                expected: format!(
                    "both operands of dtype {} (convert one with to_dtype)",
                    self.dtype()
                ),
                got: rhs.dtype(),
            });
        }
        let shape = broadcast_shapes(op, self.shape(), rhs.shape())?;
        let la = self.layout().broadcast_to(op, &shape)?;
        let lb = rhs.layout().broadcast_to(op, &shape)?;
        Ok((shape, la, lb))
    }

    /// Applies a broadcasting binary op.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let _prof = crate::profile::scope(op.name());
        let name = op.name();
        let (shape, la, lb) = self.broadcast_pair(name, rhs)?;
        if let Some(out) = crate::cuda::native::binary(self, &la, rhs, &lb, &shape, op)? {
            let rec = Tensor::record(&[self, rhs], || Op::Binary {
                lhs: self.clone(),
                rhs: rhs.clone(),
                op,
            });
            return Ok(Tensor::from_parts(out, &shape, rec));
        }
        let (sa, sb) = (self.storage(), rhs.storage());
        let out = match (sa.cpu(), sb.cpu()) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                Some(CpuStorage::F32(float_binary(op, a, &la, b, &lb)))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                Some(CpuStorage::F64(float_binary(op, a, &la, b, &lb)))
            }
            (CpuStorage::I64(a), CpuStorage::I64(b)) => {
                int_binary!(op, a, &la, b, &lb, i64).map(CpuStorage::I64)
            }
            (CpuStorage::U8(a), CpuStorage::U8(b)) => {
                int_binary!(op, a, &la, b, &lb, u8).map(CpuStorage::U8)
            }
            _ => unreachable!("dtypes matched"),
        };
        drop((sa, sb));
        let out = out.ok_or_else(|| Error::DTypeMismatch {
            op: name,
            expected: "a float tensor (f32 or f64)".into(),
            got: self.dtype(),
        })?;
        let rec = Tensor::record(&[self, rhs], || Op::Binary {
            lhs: self.clone(),
            rhs: rhs.clone(),
            op,
        });
        Tensor::from_storage_on(out, &shape, rec, self.device())
    }

    /// Compares elementwise with broadcasting; the result is a 0/1 `u8` mask.
    pub fn compare(&self, rhs: &Tensor, op: CmpOp) -> Result<Tensor> {
        let _prof = crate::profile::scope("compare");
        let (shape, la, lb) = self.broadcast_pair("compare", rhs)?;
        if let Some(out) = crate::cuda::native::compare(self, &la, rhs, &lb, &shape, op)? {
            return Ok(Tensor::from_parts(out, &shape, None));
        }
        let (sa, sb) = (self.storage(), rhs.storage());
        let out = match (sa.cpu(), sb.cpu()) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => compare(op, a, &la, b, &lb),
            (CpuStorage::F64(a), CpuStorage::F64(b)) => compare(op, a, &la, b, &lb),
            (CpuStorage::I64(a), CpuStorage::I64(b)) => compare(op, a, &la, b, &lb),
            (CpuStorage::U8(a), CpuStorage::U8(b)) => compare(op, a, &la, b, &lb),
            _ => unreachable!("dtypes matched"),
        };
        Tensor::from_storage_on(CpuStorage::U8(out), &shape, None, self.device())
    }

    /// A 0-d tensor of this tensor's dtype holding `v`.
    pub(crate) fn scalar_like(&self, v: f64) -> Tensor {
        self.full_like_shape(&[], v)
    }
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $name(&self) -> Result<Tensor> { self.unary($op) })*
        }
    };
}
unary_methods! {
    /// -x
    neg => UnaryOp::Neg;
    /// |x|
    abs => UnaryOp::Abs;
    /// e^x
    exp => UnaryOp::Exp;
    /// Natural logarithm.
    log => UnaryOp::Log;
    /// ln(1 + x), accurate for small x.
    log1p => UnaryOp::Log1p;
    /// Square root.
    sqrt => UnaryOp::Sqrt;
    /// 1/√x
    rsqrt => UnaryOp::Rsqrt;
    /// Sine.
    sin => UnaryOp::Sin;
    /// Cosine.
    cos => UnaryOp::Cos;
    /// Hyperbolic tangent (D2L 5.1.2.3).
    tanh => UnaryOp::Tanh;
    /// Logistic sigmoid (D2L 5.1.2.2).
    sigmoid => UnaryOp::Sigmoid;
    /// Rectified linear unit (D2L 5.1.2.1).
    relu => UnaryOp::Relu;
    /// GELU, exact erf form (PyTorch's default).
    gelu => UnaryOp::Gelu;
    /// Softplus ln(1 + e^x) with PyTorch's threshold 20.
    softplus => UnaryOp::Softplus;
    /// x².
    square => UnaryOp::PowScalar(2.0);
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $name(&self, rhs: &Tensor) -> Result<Tensor> { self.binary(rhs, $op) })*
        }
    };
}
binary_methods! {
    /// Broadcasting sum.
    add => BinaryOp::Add;
    /// Broadcasting difference.
    sub => BinaryOp::Sub;
    /// Broadcasting (Hadamard) product.
    mul => BinaryOp::Mul;
    /// Broadcasting quotient.
    div => BinaryOp::Div;
    /// Broadcasting power.
    pow => BinaryOp::Pow;
    /// Elementwise maximum.
    maximum => BinaryOp::Maximum;
    /// Elementwise minimum.
    minimum => BinaryOp::Minimum;
}

macro_rules! cmp_methods {
    ($($(#[$doc:meta])* $name:ident, $sname:ident => $op:expr;)*) => {
        impl Tensor {
            $(
                $(#[$doc])* pub fn $name(&self, rhs: &Tensor) -> Result<Tensor> { self.compare(rhs, $op) }
                $(#[$doc])* pub fn $sname(&self, rhs: f64) -> Result<Tensor> { self.compare(&self.scalar_like(rhs), $op) }
            )*
        }
    };
}
cmp_methods! {
    /// Elementwise `==` as a 0/1 mask.
    eq, eq_scalar => CmpOp::Eq;
    /// Elementwise `!=` as a 0/1 mask.
    ne, ne_scalar => CmpOp::Ne;
    /// Elementwise `<` as a 0/1 mask.
    lt, lt_scalar => CmpOp::Lt;
    /// Elementwise `<=` as a 0/1 mask.
    le, le_scalar => CmpOp::Le;
    /// Elementwise `>` as a 0/1 mask.
    gt, gt_scalar => CmpOp::Gt;
    /// Elementwise `>=` as a 0/1 mask.
    ge, ge_scalar => CmpOp::Ge;
}

impl Tensor {
    /// x + c. Float tensors only; integer tensors take `add(&Tensor)`.
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return self.add(&self.scalar_like(c));
        }
        self.unary(UnaryOp::AddScalar(c))
    }

    /// x - c.
    pub fn sub_scalar(&self, c: f64) -> Result<Tensor> {
        self.add_scalar(-c)
    }

    /// c·x.
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return self.mul(&self.scalar_like(c));
        }
        self.unary(UnaryOp::MulScalar(c))
    }

    /// x / c.
    pub fn div_scalar(&self, c: f64) -> Result<Tensor> {
        self.mul_scalar(1.0 / c)
    }

    /// x^p.
    pub fn pow_scalar(&self, p: f64) -> Result<Tensor> {
        self.unary(UnaryOp::PowScalar(p))
    }

    /// Leaky ReLU with the given negative slope (PyTorch default 0.01).
    pub fn leaky_relu(&self, negative_slope: f64) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu(negative_slope))
    }

    /// Clamps into `[min, max]`.
    pub fn clamp(&self, min: f64, max: f64) -> Result<Tensor> {
        if min > max {
            return Err(crate::error::invalid(
                "clamp",
                format!("expected min <= max, got min {min} and max {max}"),
            ));
        }
        self.unary(UnaryOp::Clamp(min, max))
    }

    /// max(x, c) elementwise (PyTorch's `clamp(min=c)`).
    pub fn clamp_min(&self, min: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Clamp(min, f64::INFINITY))
    }

    /// min(x, c) elementwise (PyTorch's `clamp(max=c)`).
    pub fn clamp_max(&self, max: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Clamp(f64::NEG_INFINITY, max))
    }

    /// Converts to another dtype (float→int truncates toward zero, as in PyTorch).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        let _prof = crate::profile::scope("to_dtype");
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        if let Some(out) = crate::cuda::native::cast(self, dtype)? {
            let rec = if dtype.is_float() {
                Tensor::record(&[self], || Op::Cast(self.clone()))
            } else {
                None
            };
            return Ok(Tensor::from_parts(out, self.shape(), rec));
        }
        let s = self.storage();
        let l = self.layout();
        macro_rules! conv {
            ($x:expr) => {
                match dtype {
                    DType::F32 => {
                        CpuStorage::F32(cpu::unary($x, l, |v| crate::Element::to_f64(v) as f32))
                    }
                    DType::F64 => CpuStorage::F64(cpu::unary($x, l, |v| crate::Element::to_f64(v))),
                    DType::I64 => {
                        CpuStorage::I64(cpu::unary($x, l, |v| crate::Element::to_f64(v) as i64))
                    }
                    DType::U8 => {
                        CpuStorage::U8(cpu::unary($x, l, |v| crate::Element::to_f64(v) as u8))
                    }
                }
            };
        }
        let out = crate::storage::with_slice!(s.cpu(), x => conv!(x));
        drop(s);
        let rec = if dtype.is_float() {
            Tensor::record(&[self], || Op::Cast(self.clone()))
        } else {
            None
        };
        Tensor::from_storage_on(out, self.shape(), rec, self.device())
    }
}
