//! Reverse-mode autodiff (D2L 2.5). Each computed tensor keeps the [`Op`] that made it;
//! `backward` sorts the graph topologically, walks it in reverse, and applies one rule
//! per op, freeing every op's saved tensors as soon as its rule has run.
//!
//! ## Where each op's gradient lives
//!
//! Two kinds of rule, by design:
//!
//! * **Rules here, in [`Op`]'s `match` below**, for the small composable ops: elementwise
//!   unary and binary ops, sums and extrema, matmul, and the view/movement ops (reshape,
//!   permute, broadcast, narrow, index, cat, …). Their forward lives in `ops/` and saves
//!   only the tensors the rule needs, and the rule is written with other tensor ops.
//! * **Hand-written closures next to their forward** ([`Op::Custom`], attached with
//!   `Tensor::custom_op`), for the fused kernels whose backward is a kernel of its own,
//!   kept beside the forward it mirrors:
//!   - `ops/conv.rs` — `conv2d` and `conv_transpose2d` (`bwd:conv`);
//!   - `ops/pool.rs` — max and average pooling (`bwd:max_pool`, `bwd:avg_pool`);
//!   - `ops/norm.rs` — batch and group norm (`bwd:norm`), nearest and bilinear
//!     upsampling, padding;
//!   - `d2l-nn/src/loss.rs` — the fused cross-entropy and binary cross-entropy;
//!   - `d2l-nn/src/rnn.rs` — whole-sequence RNN/GRU/LSTM layers (the kernel is
//!     [`crate::fused::rnn`]);
//!   - `d2l-vision/src/roi.rs` — RoI pooling and RoI align.
//!
//! A new op goes in the first group when it is a composition of existing ones, and in the
//! second when it has a fused forward kernel; either way `tests/gradcheck.rs` (or the
//! crate's own gradient checks) must cover it.

use crate::error::{Error, Result};
use crate::grad_mode::no_grad;
use crate::ops::elementwise::{BinaryOp, UnaryOp};
use crate::{Tensor, TensorId};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// A function called with a leaf (a parameter) once `backward` has finished its gradient.
pub type GradReadyHook = Rc<dyn Fn(&Tensor)>;

thread_local! {
    static GRAD_READY: RefCell<Option<GradReadyHook>> = const { RefCell::new(None) };
}

/// Sets (or with `None` removes) this thread's gradient-ready hook: during `backward`, each
/// leaf that requires a gradient is passed to it as soon as no later part of the graph can
/// add to its gradient (PyTorch's `register_post_accumulate_grad_hook`, which DDP uses to
/// start summing a bucket of gradients while the backward pass goes on). A leaf that the
/// pass reaches without a gradient is passed too, with none.
pub fn set_grad_ready_hook(hook: Option<GradReadyHook>) {
    GRAD_READY.with(|h| *h.borrow_mut() = hook);
}

/// How a tensor was computed: the op and the inputs (and outputs) its gradient needs.
#[derive(Clone)]
pub(crate) enum Op {
    Unary {
        arg: Tensor,
        op: UnaryOp,
        out: Option<Tensor>,
    },
    Binary {
        lhs: Tensor,
        rhs: Tensor,
        op: BinaryOp,
    },
    Sum {
        arg: Tensor,
        dims: Vec<usize>,
    },
    Extremum {
        arg: Tensor,
        dim: usize,
        keepdim: bool,
        indices: Tensor,
    },
    Matmul(Tensor, Tensor),
    Reshape(Tensor),
    Permute(Tensor, Vec<usize>),
    Broadcast(Tensor),
    Narrow {
        arg: Tensor,
        dim: usize,
        start: usize,
    },
    Copy(Tensor),
    ToDevice(Tensor),
    Cast(Tensor),
    Cat {
        args: Vec<Tensor>,
        dim: usize,
    },
    IndexSelect {
        arg: Tensor,
        dim: usize,
        index: Tensor,
    },
    Gather {
        arg: Tensor,
        dim: usize,
        index: Tensor,
    },
    ScatterAdd {
        arg: Tensor,
        dim: usize,
        index: Tensor,
        src: Tensor,
    },
    Where {
        cond: Tensor,
        a: Tensor,
        b: Tensor,
    },
    Pad {
        arg: Tensor,
        pads: Vec<(usize, usize)>,
    },
    Softmax {
        arg: Tensor,
        out: Tensor,
        dim: usize,
    },
    LogSoftmax {
        arg: Tensor,
        out: Tensor,
        dim: usize,
    },
    /// An op defined outside the engine (layers with fused kernels); its rule maps the
    /// output gradient to one gradient per input.
    Custom {
        name: &'static str,
        args: Vec<Tensor>,
        backward: crate::ops::BackwardFn,
    },
}

impl Op {
    /// The op's name in the [`profile`](crate::profile): `"bwd:<kind>"`.
    fn profile_name(&self) -> &'static str {
        match self {
            Op::Unary { .. } => "bwd:unary",
            Op::Binary { .. } => "bwd:binary",
            Op::Sum { .. } => "bwd:sum",
            Op::Extremum { .. } => "bwd:max/min",
            Op::Matmul(..) => "bwd:matmul",
            Op::Reshape(_) => "bwd:reshape",
            Op::Permute(..) => "bwd:permute",
            Op::Broadcast(_) => "bwd:broadcast",
            Op::Narrow { .. } => "bwd:narrow",
            Op::Copy(_) => "bwd:copy",
            Op::ToDevice(_) => "bwd:to_device",
            Op::Cast(_) => "bwd:cast",
            Op::Cat { .. } => "bwd:cat",
            Op::IndexSelect { .. } => "bwd:index_select",
            Op::Gather { .. } => "bwd:gather",
            Op::ScatterAdd { .. } => "bwd:scatter_add",
            Op::Where { .. } => "bwd:where",
            Op::Pad { .. } => "bwd:pad",
            Op::Softmax { .. } => "bwd:softmax",
            Op::LogSoftmax { .. } => "bwd:log_softmax",
            Op::Custom { name, .. } => name,
        }
    }

    /// The differentiable inputs, in the order `grads` returns their gradients.
    pub(crate) fn inputs(&self) -> Vec<Tensor> {
        match self {
            Op::Unary { arg, .. }
            | Op::Sum { arg, .. }
            | Op::Extremum { arg, .. }
            | Op::Reshape(arg)
            | Op::Permute(arg, _)
            | Op::Broadcast(arg)
            | Op::Narrow { arg, .. }
            | Op::Copy(arg)
            | Op::ToDevice(arg)
            | Op::Cast(arg)
            | Op::IndexSelect { arg, .. }
            | Op::Gather { arg, .. }
            | Op::Pad { arg, .. }
            | Op::Softmax { arg, .. }
            | Op::LogSoftmax { arg, .. } => vec![arg.clone()],
            Op::Binary { lhs, rhs, .. } | Op::Matmul(lhs, rhs) => vec![lhs.clone(), rhs.clone()],
            Op::Cat { args, .. } | Op::Custom { args, .. } => args.clone(),
            Op::ScatterAdd { arg, src, .. } => vec![arg.clone(), src.clone()],
            Op::Where { a, b, .. } => vec![a.clone(), b.clone()],
        }
    }

    /// The gradient of each input given the gradient `g` of the output (`None` where
    /// none flows). Every rule lives here.
    fn grads(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let one = |t: Tensor| Ok(vec![Some(t)]);
        match self {
            Op::Unary { arg, op, out } => {
                let saved = if op.grad_from_output() {
                    out.as_ref().unwrap_or(arg)
                } else {
                    arg
                };
                one(Tensor::unary_backward(*op, saved, g)?)
            }
            Op::Binary { lhs, rhs, op } => {
                // Only the gradients of inputs that need one are computed.
                let (na, nb) = (lhs.requires_grad(), rhs.requires_grad());
                let when = |need: bool, f: &dyn Fn() -> Result<Tensor>| -> Result<Option<Tensor>> {
                    if need {
                        f().map(Some)
                    } else {
                        Ok(None)
                    }
                };
                let (ga, gb) = match op {
                    BinaryOp::Add => (Some(g.clone()), Some(g.clone())),
                    BinaryOp::Sub => (Some(g.clone()), when(nb, &|| g.neg())?),
                    BinaryOp::Mul => (when(na, &|| g.mul(rhs))?, when(nb, &|| g.mul(lhs))?),
                    BinaryOp::Div => {
                        let ga = g.div(rhs)?;
                        let gb = when(nb, &|| ga.mul(lhs)?.div(rhs)?.neg())?;
                        (Some(ga), gb)
                    }
                    BinaryOp::Pow => (
                        when(na, &|| g.mul(rhs)?.mul(&lhs.pow(&rhs.sub_scalar(1.0)?)?))?,
                        when(nb, &|| g.mul(&lhs.pow(rhs)?)?.mul(&lhs.log()?))?,
                    ),
                    BinaryOp::Maximum | BinaryOp::Minimum => {
                        // Ties split the gradient evenly, as in PyTorch.
                        let wins = if *op == BinaryOp::Maximum {
                            lhs.gt(rhs)?
                        } else {
                            lhs.lt(rhs)?
                        };
                        let ties = lhs.eq(rhs)?;
                        let w = wins
                            .to_dtype(g.dtype())?
                            .add(&ties.to_dtype(g.dtype())?.mul_scalar(0.5)?)?;
                        let ga = g.mul(&w)?;
                        let gb = when(nb, &|| g.sub(&ga))?;
                        (Some(ga), gb)
                    }
                };
                Ok(vec![
                    ga.filter(|_| na)
                        .map(|t| t.sum_to(lhs.shape()))
                        .transpose()?,
                    gb.filter(|_| nb)
                        .map(|t| t.sum_to(rhs.shape()))
                        .transpose()?,
                ])
            }
            Op::Sum { arg, dims } => {
                let mut keep = arg.shape().to_vec();
                for &d in dims {
                    keep[d] = 1;
                }
                one(g.reshape(keep)?.broadcast_to(arg.shape())?)
            }
            Op::Extremum {
                arg,
                dim,
                keepdim,
                indices,
            } => {
                let (g, idx) = if *keepdim {
                    (g.clone(), indices.clone())
                } else {
                    (
                        g.unsqueeze(*dim as isize)?,
                        indices.unsqueeze(*dim as isize)?,
                    )
                };
                one(g
                    .zeros_like_shape(arg.shape())
                    .scatter_add(*dim as isize, &idx, &g)?)
            }
            Op::Matmul(a, b) => {
                // Only the gradients of inputs that need one (a network's input does not).
                // An operand that is a transposed view (`x.matmul(&w.t())`) gets its
                // gradient as the transpose of the transposed product: the same GEMM, in
                // the orientation that makes the gradient flowing back through the view
                // (to `w`) contiguous, so no copy is needed anywhere.
                let ga = a
                    .requires_grad()
                    .then(|| {
                        if transposed_view(a) && b.rank() == 2 && g.rank() == 2 {
                            b.matmul(&g.transpose(-1, -2)?)?.transpose(-1, -2)
                        } else {
                            g.matmul(&b.transpose(-1, -2)?)?.sum_to(a.shape())
                        }
                    })
                    .transpose()?;
                let gb = b
                    .requires_grad()
                    .then(|| {
                        if transposed_view(b) && a.rank() == 2 && g.rank() == 2 {
                            g.transpose(-1, -2)?.matmul(a)?.transpose(-1, -2)
                        } else {
                            a.transpose(-1, -2)?.matmul(g)?.sum_to(b.shape())
                        }
                    })
                    .transpose()?;
                Ok(vec![ga, gb])
            }
            Op::Reshape(arg) => one(g.reshape(arg.shape())?),
            Op::Permute(_, dims) => {
                let mut inv = vec![0; dims.len()];
                for (i, &d) in dims.iter().enumerate() {
                    inv[d] = i;
                }
                one(g.permute(&inv)?)
            }
            Op::Broadcast(arg) => one(g.sum_to(arg.shape())?),
            Op::Narrow { arg, dim, start } => {
                let mut pads = vec![(0, 0); arg.rank()];
                pads[*dim] = (*start, arg.shape()[*dim] - start - g.shape()[*dim]);
                one(g.pad_dims(&pads, 0.0)?)
            }
            Op::Copy(_) => one(g.clone()),
            Op::ToDevice(arg) => one(g.to(arg.device())?),
            Op::Cast(arg) => one(g.to_dtype(arg.dtype())?),
            Op::Cat { args, dim } => {
                let mut start = 0;
                args.iter()
                    .map(|a| {
                        let n = a.shape()[*dim];
                        let part = g.narrow(*dim as isize, start, n)?;
                        start += n;
                        Ok(a.requires_grad().then_some(part))
                    })
                    .collect()
            }
            Op::IndexSelect { arg, dim, index } => {
                // Spread g back with a scatter-add whose index repeats `index` along `dim`.
                let mut view = vec![1; arg.rank()];
                view[*dim] = index.numel();
                let idx = index.reshape(view)?.broadcast_to(g.shape())?.contiguous()?;
                one(g
                    .zeros_like_shape(arg.shape())
                    .scatter_add(*dim as isize, &idx, g)?)
            }
            Op::Gather { arg, dim, index } => {
                one(g
                    .zeros_like_shape(arg.shape())
                    .scatter_add(*dim as isize, index, g)?)
            }
            Op::ScatterAdd {
                src, dim, index, ..
            } => {
                let gs = g.gather(*dim as isize, index)?;
                let gs = if gs.shape() == src.shape() {
                    gs
                } else {
                    let mut pads = vec![(0, 0); src.rank()];
                    for (d, p) in pads.iter_mut().enumerate() {
                        p.1 = src.shape()[d] - gs.shape()[d];
                    }
                    gs.pad_dims(&pads, 0.0)?
                };
                Ok(vec![Some(g.clone()), Some(gs)])
            }
            Op::Where { cond, a, b } => {
                let z = g.scalar_like(0.0);
                let ga = Tensor::where_cond(cond, g, &z)?.sum_to(a.shape())?;
                let gb = Tensor::where_cond(cond, &z, g)?.sum_to(b.shape())?;
                Ok(vec![Some(ga), Some(gb)])
            }
            Op::Pad { pads, .. } => {
                let mut x = g.clone();
                for (d, &(before, _)) in pads.iter().enumerate() {
                    let n = x.shape()[d] - before - pads[d].1;
                    x = x.narrow(d as isize, before, n)?;
                }
                one(x)
            }
            Op::Softmax { out, dim, .. } => {
                let d = *dim as isize;
                let s = g.mul(out)?.sum(&[d], true)?;
                one(out.mul(&g.sub(&s)?)?)
            }
            Op::LogSoftmax { out, dim, .. } => {
                let d = *dim as isize;
                let s = g.sum(&[d], true)?;
                one(g.sub(&out.exp()?.mul(&s)?)?)
            }
            Op::Custom { backward, .. } => backward(g),
        }
    }
}

impl Tensor {
    /// Zeros of `shape` with this tensor's dtype.
    pub(crate) fn zeros_like_shape(&self, shape: &[usize]) -> Tensor {
        self.full_like_shape(shape, 0.0)
    }

    /// Sums a broadcast gradient back to `shape` (the backward of broadcasting).
    pub fn sum_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let extra = self
            .rank()
            .checked_sub(shape.len())
            .ok_or_else(|| Error::ShapeMismatch {
                op: "sum_to",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
                why: "do not agree: the target has more dims".into(),
            })?;
        let dims: Vec<isize> = (0..self.rank())
            .filter(|&d| d < extra || (shape[d - extra] == 1 && self.shape()[d] != 1))
            .map(|d| d as isize)
            .collect();
        self.sum(&dims, true)?.reshape(shape)
    }

    /// Computes gradients of this scalar with respect to every leaf that requires one and
    /// adds them to the leaves' `.grad` (D2L 2.5.1). Frees the graph.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Autograd(format!(
                "backward() needs a scalar output, got shape {:?}; pass an output gradient with backward_with",
                self.shape()
            )));
        }
        self.backward_opts(&self.ones_like(), false)
    }

    /// Backpropagates a given output gradient (D2L 2.5.2, non-scalar outputs).
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        self.backward_opts(grad, false)
    }

    /// Backward with control over freeing: `retain_graph` keeps the graph for another pass.
    pub fn backward_opts(&self, grad: &Tensor, retain_graph: bool) -> Result<()> {
        if !self.requires_grad() {
            return Err(Error::Autograd(
                "backward() on a tensor that does not require grad (no input had requires_grad set, or it was computed under no_grad)".into(),
            ));
        }
        if grad.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "backward",
                lhs: self.shape().to_vec(),
                rhs: grad.shape().to_vec(),
                why: "must be equal: the output gradient needs the output's shape".into(),
            });
        }
        self.same_device("backward", grad)?;
        no_grad(|| run_backward(self, grad.to_dtype(self.dtype())?, retain_graph))
    }
}

/// Depth-first post-order of the nodes that carry an op: inputs come before their users.
fn topo_order(root: &Tensor) -> Result<Vec<Tensor>> {
    let mut order = Vec::new();
    let mut seen: HashSet<TensorId> = HashSet::new();
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        match t.op_inputs() {
            Some(inputs) => {
                stack.push((t.clone(), true));
                for i in inputs {
                    if i.requires_grad() && !seen.contains(&i.id()) {
                        stack.push((i, false));
                    }
                }
            }
            None if t.is_leaf() => {}
            None => {
                return Err(Error::Autograd(
                    "trying to backward through the graph a second time: its saved tensors were freed by the first backward (use backward_opts with retain_graph = true)".into(),
                ))
            }
        }
    }
    Ok(order)
}

/// A 2-D tensor whose transpose is contiguous (`w.t()` of a contiguous `w`).
fn transposed_view(t: &Tensor) -> bool {
    let l = t.layout();
    t.rank() == 2 && !l.is_contiguous() && l.strides[0] == 1 && l.strides[1] == t.shape()[0]
}

fn run_backward(root: &Tensor, seed: Tensor, retain_graph: bool) -> Result<()> {
    let hook = GRAD_READY.with(|h| h.borrow().clone());
    if root.is_leaf() {
        root.accumulate_grad(seed.contiguous()?)?;
        if let Some(h) = &hook {
            h(root);
        }
        return Ok(());
    }
    let mut order: Vec<Option<Tensor>> = topo_order(root)?.into_iter().map(Some).collect();
    // With a hook: the edges still to come into each leaf that requires a gradient.
    let mut edges_left: HashMap<TensorId, usize> = HashMap::new();
    if hook.is_some() {
        for node in order.iter().flatten() {
            for input in node.op_inputs().unwrap_or_default() {
                if input.is_leaf() && input.requires_grad() {
                    *edges_left.entry(input.id()).or_insert(0) += 1;
                }
            }
        }
    }
    // One edge into `leaf` is done; the hook hears of it after the last one.
    let edge_done = |leaf: &Tensor, left: &mut HashMap<TensorId, usize>| {
        if let (Some(h), Some(n)) = (&hook, left.get_mut(&leaf.id())) {
            *n -= 1;
            if *n == 0 {
                h(leaf);
            }
        }
    };
    let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
    grads.insert(root.id(), seed);
    for slot in order.iter_mut().rev() {
        let node = slot.take().expect("each node is visited once");
        let Some(g) = grads.remove(&node.id()) else {
            // No gradient reached this node: its edges into leaves bring nothing.
            if hook.is_some() {
                for input in node.op_inputs().unwrap_or_default() {
                    if input.is_leaf() && input.requires_grad() {
                        edge_done(&input, &mut edges_left);
                    }
                }
            }
            continue;
        };
        let op = if retain_graph {
            node.clone_op()
        } else {
            node.take_op()
        };
        let Some(op) = op else { continue };
        let inputs = op.inputs();
        let name = op.profile_name();
        let input_grads = {
            let _p = crate::profile::scope(name);
            op.grads(&g)?
        };
        drop(op);
        for (input, ig) in inputs.into_iter().zip(input_grads) {
            let Some(ig) = ig else {
                if input.is_leaf() && input.requires_grad() {
                    edge_done(&input, &mut edges_left);
                }
                continue;
            };
            if !input.requires_grad() {
                continue;
            }
            // A rule (a custom op's above all) must give each input's gradient on that
            // input's device: storing it elsewhere would fail far from the cause.
            if ig.device() != input.device() {
                return Err(Error::Autograd(format!(
                    "{name}: the backward rule gave a gradient on {} for an input on {}",
                    ig.device(),
                    input.device()
                )));
            }
            if input.is_leaf() {
                input.accumulate_grad(ig.contiguous()?)?;
                edge_done(&input, &mut edges_left);
            } else {
                match grads.remove(&input.id()) {
                    Some(prev) => grads.insert(input.id(), prev.add(&ig)?),
                    None => grads.insert(input.id(), ig),
                };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{no_grad, Tensor};
    use std::sync::Arc;

    #[test]
    fn the_grad_ready_hook_hears_of_each_leaf_once_with_its_final_gradient() {
        use std::cell::RefCell;
        use std::rc::Rc;
        let leaf = |v: &[f32]| {
            Tensor::from_slice(v, &[v.len()])
                .unwrap()
                .requires_grad_(true)
                .unwrap()
        };
        let (x, w1, w2, unused) = (
            leaf(&[1.0, 2.0]),
            leaf(&[0.5, -1.0]),
            leaf(&[3.0, 4.0]),
            leaf(&[7.0, 7.0]),
        );
        let seen: Rc<RefCell<Vec<(crate::TensorId, Vec<f32>)>>> = Rc::default();
        let s = seen.clone();
        super::set_grad_ready_hook(Some(Rc::new(move |t: &Tensor| {
            let g = t.grad().map(|g| g.to_vec::<f32>()).unwrap_or_default();
            s.borrow_mut().push((t.id(), g));
        })));
        // w1 is used twice (h and again at the end); `unused` only in a branch whose
        // gradient is cut off by detach, so no gradient reaches it.
        let h = w1.mul(&x).unwrap();
        let y = h
            .mul(&w2)
            .unwrap()
            .add(&w1)
            .unwrap()
            .add(&unused.mul(&x).unwrap().detach())
            .unwrap()
            .sum_all()
            .unwrap();
        y.backward().unwrap();
        super::set_grad_ready_hook(None);
        let seen = seen.borrow();
        let ids: Vec<_> = seen.iter().map(|(id, _)| *id).collect();
        for t in [&x, &w1, &w2] {
            assert_eq!(ids.iter().filter(|i| **i == t.id()).count(), 1);
            let at_hook = &seen.iter().find(|(id, _)| *id == t.id()).unwrap().1;
            assert_eq!(
                at_hook,
                &t.grad().unwrap().to_vec::<f32>(),
                "final when heard"
            );
        }
        assert!(!ids.contains(&unused.id()));
        // dy/dw1 = x * w2 + 1, dy/dw2 = w1 * x, dy/dx = w1 * w2.
        assert_eq!(w1.grad().unwrap().to_vec::<f32>(), vec![4.0, 9.0]);
        assert_eq!(w2.grad().unwrap().to_vec::<f32>(), vec![0.5, -2.0]);
        // No hook: nothing is heard.
        let z = w2.mul(&x).unwrap().sum_all().unwrap();
        z.backward().unwrap();
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn saved_tensors_are_released_by_backward() {
        let x = Tensor::from_slice(&[0.5f32, 1.0], &[2])
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let h = x.exp().unwrap(); // saves its own output (a second handle on h's buffer)
        let y = h.sin().unwrap(); // saves h
        let z = y.sum_all().unwrap();
        assert_eq!(Arc::strong_count(&h.0.storage), 2);
        assert_eq!(
            Arc::strong_count(&x.0),
            2,
            "x is referenced by exp's record"
        );
        z.backward().unwrap();
        assert_eq!(
            Arc::strong_count(&h.0.storage),
            1,
            "exp's saved output was freed"
        );
        assert_eq!(
            Arc::strong_count(&x.0),
            1,
            "nothing in the graph holds x any more"
        );
        assert!(x.grad().is_some());
    }

    #[test]
    fn no_grad_keeps_nothing_alive() {
        let x = Tensor::from_slice(&[0.5f32, 1.0], &[2])
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let y = no_grad(|| x.exp().unwrap().sin().unwrap());
        assert_eq!(
            Arc::strong_count(&x.0),
            1,
            "no op recorded a reference to x"
        );
        assert!(!y.has_graph());
    }
}
