//! Errors of the engine: every fallible op returns [`Result`], and each message says
//! which op failed, what it expected and what it got.

use crate::{DType, Device};
use std::fmt;

/// Everything that can go wrong in a tensor operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Two shapes that had to agree (or broadcast) do not.
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
        why: String,
    },
    /// A shape argument is invalid for the tensor it is applied to.
    BadShape { op: &'static str, msg: String },
    /// The tensor's dtype is not one the op accepts.
    DTypeMismatch {
        op: &'static str,
        expected: String,
        got: DType,
    },
    /// A dimension index is out of range.
    DimOutOfRange {
        op: &'static str,
        dim: isize,
        rank: usize,
    },
    /// An element index is out of range.
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        size: usize,
    },
    /// Inputs live on different devices.
    DeviceMismatch {
        op: &'static str,
        lhs: Device,
        rhs: Device,
    },
    /// A device was asked for that this machine or build does not have.
    DeviceUnavailable { device: Device, why: String },
    /// The device runtime failed (out of device memory, a driver or kernel error).
    Backend { op: &'static str, msg: String },
    /// An autograd misuse (backward on a non-scalar, on a freed graph, ...).
    Autograd(String),
    /// Any other invalid argument.
    InvalidArgument { op: &'static str, msg: String },
    /// A request over the memory limit ([`crate::limit`]): what asked (a flag, an op and
    /// shape), its size in bytes (`None` when computing it overflowed) and the limit.
    TooLarge {
        what: String,
        bytes: Option<u128>,
        limit: String,
    },
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, lhs, rhs, why } => {
                write!(f, "{op}: shapes {lhs:?} and {rhs:?} {why}")
            }
            Error::BadShape { op, msg } => write!(f, "{op}: {msg}"),
            Error::DTypeMismatch { op, expected, got } => {
                write!(f, "{op}: expected {expected}, got {got}")
            }
            Error::DimOutOfRange { op, dim, rank } => write!(
                f,
                "{op}: dimension {dim} is out of range for a tensor of rank {rank} (expected {} to {})",
                -(*rank as isize).max(1),
                (*rank as isize - 1).max(0)
            ),
            Error::IndexOutOfRange { op, index, size } => {
                write!(f, "{op}: index {index} is out of range for a dimension of size {size}")
            }
            Error::DeviceMismatch { op, lhs, rhs } => write!(
                f,
                "{op}: expected all tensors on the same device, got {lhs} and {rhs}"
            ),
            Error::DeviceUnavailable { device, why } => {
                write!(f, "{device} is not available: {why}")
            }
            Error::Backend { op, msg } => write!(f, "{op}: {msg}"),
            Error::Autograd(msg) => write!(f, "autograd: {msg}"),
            Error::InvalidArgument { op, msg } => write!(f, "{op}: {msg}"),
            Error::TooLarge { what, bytes, limit } => match bytes {
                Some(b) => write!(
                    f,
                    "{what}: needs {}, over the memory limit of {limit}",
                    crate::limit::human_bytes(*b)
                ),
                None => write!(
                    f,
                    "{what}: its size overflows 64-bit arithmetic, far over the memory limit of {limit}"
                ),
            },
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op,
        msg: msg.into(),
    }
}

pub(crate) fn bad_shape(op: &'static str, msg: impl Into<String>) -> Error {
    Error::BadShape {
        op,
        msg: msg.into(),
    }
}
