//! Operator overloading: `&a + &b`, `&a * 2.0`, `-&a`. Like every op they can fail (shape
//! mismatch), so they return `Result<Tensor>`: write `(&a + &b)?`. Scalars are `f64`
//! (one scalar type keeps float literals unambiguous).

use crate::error::Result;
use crate::Tensor;
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! overload {
    ($trait:ident, $method:ident, $tensor_fn:ident, $scalar_fn:expr, $rscalar_fn:expr) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                self.$tensor_fn(rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                (&self).$tensor_fn(&rhs)
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                (&self).$tensor_fn(rhs)
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                self.$tensor_fn(&rhs)
            }
        }
        impl $trait<f64> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f64) -> Result<Tensor> {
                let f: fn(&Tensor, f64) -> Result<Tensor> = $scalar_fn;
                f(self, rhs)
            }
        }
        impl $trait<f64> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f64) -> Result<Tensor> {
                let f: fn(&Tensor, f64) -> Result<Tensor> = $scalar_fn;
                f(&self, rhs)
            }
        }
        impl $trait<&Tensor> for f64 {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                let f: fn(f64, &Tensor) -> Result<Tensor> = $rscalar_fn;
                f(self, rhs)
            }
        }
    };
}

overload!(Add, add, add, |t, c| t.add_scalar(c), |c, t| t
    .add_scalar(c));
overload!(Sub, sub, sub, |t, c| t.add_scalar(-c), |c, t| t
    .neg()?
    .add_scalar(c));
overload!(Mul, mul, mul, |t, c| t.mul_scalar(c), |c, t| t
    .mul_scalar(c));
overload!(Div, div, div, |t, c| t.div_scalar(c), |c, t| t
    .pow_scalar(-1.0)?
    .mul_scalar(c));

impl Neg for &Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(&self)
    }
}
