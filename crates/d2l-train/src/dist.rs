//! Data-parallel training over several processes (PyTorch's `DistributedDataParallel`,
//! Horovod): what [`crate::trainer::Trainer::fit_source`] does with a
//! [`TrainConfig::distributed`](crate::trainer::TrainConfig) communicator.
//!
//! - **Start.** Every rank checks that the others run the same thing (a hash of the
//!   caller's settings, the task, the model's parameter names and shapes and the batches
//!   per epoch; a difference is refused with one line), then takes rank 0's parameters
//!   and buffers.
//! - **Batches.** Every rank draws the same global batch (the same seeded shuffle) and
//!   keeps its rows ([`shard_range`]); its loss is weighted by its share of the global
//!   batch, so that the summed gradients are exactly the gradient of the global batch's
//!   mean loss — a short last batch included.
//! - **Gradients** are summed over the ranks in buckets of about 25 MB (1 MB for the
//!   first), last layers first ([`GradSync`]). A bucket's allreduce starts from the
//!   autograd's gradient-ready hook as soon as its last gradient is ready, so it runs on
//!   the communication thread while the backward pass goes on (`D2L_DIST_OVERLAP=0`
//!   starts them all after the backward pass instead, for measuring). Clipping and the
//!   optimiser step come after the sum, so every rank makes the same update.
//! - **Measurements.** The epoch's sums (training and evaluation) are summed over the
//!   ranks; only rank 0 prints and writes the run folder.
//! - **Batch norm.** Without `--sync-bn` each rank normalises its own rows (as DDP does)
//!   and rank 0's running statistics are given to every rank after each epoch.

use crate::tasks::Batch;
use d2l_dist::{Comm, DistError, Pending};
use d2l_nn::Module;
use d2l_tensor::{no_grad, DType, Error, Result, Tensor, TensorId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

/// Whether gradient allreduces start during the backward pass (`D2L_DIST_OVERLAP=0`:
/// after it).
pub fn overlap_enabled() -> bool {
    std::env::var("D2L_DIST_OVERLAP").map_or(true, |v| v.trim() != "0")
}

/// Floats per gradient bucket: 25 MB of f32, DDP's `bucket_cap_mb` default.
pub const BUCKET_FLOATS: usize = 25 * 1024 * 1024 / 4;

/// A training run's distributed part: the communicator and what must agree across ranks.
#[derive(Debug, Clone)]
pub struct Distributed {
    /// The job's communicator.
    pub comm: Comm,
    /// The caller's settings that every rank must share (the command's flags as JSON):
    /// part of the start-up check.
    pub config_key: String,
}

/// The `op` of errors every rank returns together (a start-up mismatch, a non-finite
/// loss on some rank): the program can end them in order instead of aborting the job.
pub const SHARED_ERROR_OP: &str = "distributed training";

/// Whether `e` is an error every rank of the job returned at the same point.
pub fn is_shared_error(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument { op, .. } if *op == SHARED_ERROR_OP)
}

pub(crate) fn shared_error(msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op: SHARED_ERROR_OP,
        msg: msg.into(),
    }
}

/// A communication failure as an engine error.
pub fn comm_error(e: DistError) -> Error {
    Error::InvalidArgument {
        op: "communication",
        msg: e.0,
    }
}

/// The rows `[start, end)` of a global batch of `rows` that rank `rank` of `size` trains
/// on: contiguous, in rank order, sizes differing by at most one.
pub fn shard_range(rows: usize, rank: usize, size: usize) -> (usize, usize) {
    (rows * rank / size, rows * (rank + 1) / size)
}

/// This rank's part of a global batch (`None` when it gets no rows), with its size in the
/// task's units (examples, tokens) in proportion to its rows.
pub(crate) fn shard(batch: &Batch, rank: usize, size: usize) -> Result<Option<Batch>> {
    if size == 1 {
        return Ok(Some(batch.clone()));
    }
    let rows = batch.x.shape().first().copied().unwrap_or(0);
    let (a, b) = shard_range(rows, rank, size);
    if a == b {
        return Ok(None);
    }
    let y_rows = batch.y.shape().first().copied().unwrap_or(0);
    if y_rows != rows {
        return Err(Error::InvalidArgument {
            op: "distributed training",
            msg: format!(
                "cannot split a batch whose inputs have {rows} rows and targets {y_rows} over the ranks"
            ),
        });
    }
    Ok(Some(Batch {
        x: batch.x.narrow(0, a, b - a)?,
        y: batch.y.narrow(0, a, b - a)?,
        size: batch.size * (b - a) / rows,
    }))
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// Checks that every rank runs the same configuration (`key`: the caller's settings,
/// the task and the model's shapes); a difference is an error on every rank naming the
/// ranks that differ from rank 0.
pub(crate) fn check_same_config(comm: &Comm, key: &str) -> Result<()> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    fnv(&mut h, key.as_bytes());
    let all = comm.all_gather_u64(h).map_err(comm_error)?;
    let differ: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != all[0])
        .map(|(r, _)| r.to_string())
        .collect();
    if !differ.is_empty() {
        return Err(shared_error(format!(
            "refusing to start: rank{} {} run{} another model, parameter shapes or flags than rank 0 (every rank must run the same command)",
            if differ.len() > 1 { "s" } else { "" },
            differ.join(", "),
            if differ.len() > 1 { "" } else { "s" },
        )));
    }
    Ok(())
}

/// Gives every rank rank 0's values of `tensors` (parameters and buffers).
pub(crate) fn broadcast_tensors(comm: &Comm, tensors: &[Tensor]) -> Result<()> {
    if comm.size() == 1 || tensors.is_empty() {
        return Ok(());
    }
    // Every dtype goes through f64 bytes: exact for f32, i64 counters up to 2^53.
    let mut flat: Vec<u8> = Vec::new();
    if comm.is_root() {
        for t in tensors {
            for v in t.cpu()?.to_f64_vec() {
                flat.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    comm.broadcast_bytes(&mut flat, 0).map_err(comm_error)?;
    let total: usize = tensors.iter().map(|t| t.numel()).sum();
    if flat.len() != total * 8 {
        return Err(shared_error(format!(
            "rank 0 sent {} values for {total} parameter and buffer values",
            flat.len() / 8
        )));
    }
    if comm.is_root() {
        return Ok(());
    }
    let mut at = 0;
    no_grad(|| -> Result<()> {
        for t in tensors {
            let n = t.numel();
            let vals: Vec<f64> = flat[at * 8..(at + n) * 8]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            at += n;
            t.copy_(&Tensor::from_vec(vals, t.shape())?)?;
        }
        Ok(())
    })
}

/// A 64-bit checksum (FNV-1a) of a model's state: names and the bits of every value.
pub fn state_checksum(net: &dyn Module) -> Result<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, t) in net.state_dict() {
        fnv(&mut h, name.as_bytes());
        let t = t.cpu()?;
        if t.dtype() == DType::F32 {
            for v in t.to_vec::<f32>() {
                fnv(&mut h, &v.to_bits().to_le_bytes());
            }
        } else {
            for v in t.to_f64_vec() {
                fnv(&mut h, &v.to_bits().to_le_bytes());
            }
        }
    }
    Ok(h)
}

/// Floats of the first gradient bucket: 1 MB, as DDP, so that the first allreduce starts
/// early in the backward pass.
pub const FIRST_BUCKET_FLOATS: usize = 1024 * 1024 / 4;

/// Sums the parameters' gradients over the ranks in buckets, last parameters first
/// (about [`FIRST_BUCKET_FLOATS`] for the first, [`BUCKET_FLOATS`] for the others).
///
/// With [`GradSync::hook`] installed as the autograd's gradient-ready hook, a bucket's
/// allreduce starts as soon as all its gradients are ready, while the backward pass goes
/// on; [`GradSync::finish`] starts the rest (all of them without the hook), waits, and
/// writes the sums back. Buckets start in the same order on every rank (bucket `k` only
/// after bucket `k - 1`), as MPI needs.
pub(crate) struct GradSync {
    comm: Comm,
    params: Vec<Tensor>,
    buckets: Vec<Vec<usize>>,
    bucket_of: HashMap<TensorId, usize>,
    step: RefCell<StepState>,
}

#[derive(Default)]
struct StepState {
    ready: Vec<usize>,
    pending: Vec<Pending>,
    error: Option<Error>,
}

impl GradSync {
    pub(crate) fn new(comm: Comm, params: Vec<Tensor>) -> GradSync {
        let mut buckets: Vec<Vec<usize>> = Vec::new();
        let mut cur: Vec<usize> = Vec::new();
        let mut cur_len = 0;
        for i in (0..params.len()).rev() {
            let cap = if buckets.is_empty() {
                FIRST_BUCKET_FLOATS
            } else {
                BUCKET_FLOATS
            };
            let n = params[i].numel();
            if !cur.is_empty() && cur_len + n > cap {
                buckets.push(std::mem::take(&mut cur));
                cur_len = 0;
            }
            cur.push(i);
            cur_len += n;
        }
        if !cur.is_empty() {
            buckets.push(cur);
        }
        let mut bucket_of = HashMap::new();
        for (k, b) in buckets.iter().enumerate() {
            for &i in b {
                bucket_of.insert(params[i].id(), k);
            }
        }
        GradSync {
            comm,
            params,
            buckets,
            bucket_of,
            step: RefCell::new(StepState::default()),
        }
    }

    /// Clears the previous step's state (call before the backward pass).
    pub(crate) fn begin_step(&self) {
        *self.step.borrow_mut() = StepState {
            ready: vec![0; self.buckets.len()],
            ..Default::default()
        };
    }

    /// The gradient-ready hook over `this` (see [`d2l_tensor::set_grad_ready_hook`]).
    pub(crate) fn hook(this: &Rc<GradSync>) -> d2l_tensor::GradReadyHook {
        let me = this.clone();
        Rc::new(move |t: &Tensor| me.on_ready(t))
    }

    fn on_ready(&self, t: &Tensor) {
        let Some(&k) = self.bucket_of.get(&t.id()) else {
            return;
        };
        let mut st = self.step.borrow_mut();
        if st.error.is_some() {
            return;
        }
        st.ready[k] += 1;
        // Start every bucket, in order, whose gradients are all ready.
        while st.pending.len() < self.buckets.len()
            && st.ready[st.pending.len()] == self.buckets[st.pending.len()].len()
        {
            let k = st.pending.len();
            match self.launch(k) {
                Ok(p) => st.pending.push(p),
                Err(e) => {
                    st.error = Some(e);
                    return;
                }
            }
        }
    }

    fn launch(&self, k: usize) -> Result<Pending> {
        let bucket = &self.buckets[k];
        let len: usize = bucket.iter().map(|&i| self.params[i].numel()).sum();
        let mut buf = Vec::with_capacity(len);
        for &i in bucket {
            match self.params[i].grad() {
                Some(g) => buf.extend(g.cpu()?.to_vec::<f32>()),
                None => buf.extend(std::iter::repeat_n(0.0f32, self.params[i].numel())),
            }
        }
        self.comm.start_allreduce_sum(buf).map_err(comm_error)
    }

    /// Starts the buckets not started yet and `control` (flags every rank must agree on,
    /// summed), waits for every sum and writes the gradients back; returns the summed
    /// control values and the seconds spent waiting. A parameter without a gradient on
    /// any rank keeps none; one with a gradient on some rank gets the sum.
    pub(crate) fn finish(&self, control: &[f32]) -> Result<(Vec<f32>, f64)> {
        if self.comm.size() == 1 {
            return Ok((control.to_vec(), 0.0));
        }
        let mut st = std::mem::take(&mut *self.step.borrow_mut());
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        while st.pending.len() < self.buckets.len() {
            let p = self.launch(st.pending.len())?;
            st.pending.push(p);
        }
        let mut tail: Vec<f32> = control.to_vec();
        tail.extend(
            self.params
                .iter()
                .map(|p| f32::from(p.grad().is_some() as u8)),
        );
        let tail_pending = self.comm.start_allreduce_sum(tail).map_err(comm_error)?;
        let mut waited = 0.0;
        let mut sums = Vec::with_capacity(self.buckets.len());
        for p in st.pending {
            let t0 = Instant::now();
            sums.push(p.wait().map_err(comm_error)?);
            waited += t0.elapsed().as_secs_f64();
        }
        let t0 = Instant::now();
        let tail = tail_pending.wait().map_err(comm_error)?;
        waited += t0.elapsed().as_secs_f64();
        let has_grad = &tail[control.len()..];
        for (bucket, buf) in self.buckets.iter().zip(sums) {
            let mut at = 0;
            for &i in bucket {
                let p = &self.params[i];
                let n = p.numel();
                if has_grad[i] > 0.0 {
                    let mut g = Tensor::from_vec(buf[at..at + n].to_vec(), p.shape())?;
                    if p.dtype() != DType::F32 {
                        g = g.to_dtype(p.dtype())?;
                    }
                    p.set_grad(Some(g.to(p.device())?));
                } else {
                    p.set_grad(None);
                }
                at += n;
            }
        }
        Ok((tail[..control.len()].to_vec(), waited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_rank_order() {
        for (rows, size) in [(64, 2), (66, 3), (58, 3), (2, 3), (1, 4)] {
            let mut next = 0;
            for r in 0..size {
                let (a, b) = shard_range(rows, r, size);
                assert_eq!(a, next);
                assert!(b - a <= rows.div_ceil(size) && b - a >= rows / size);
                next = b;
            }
            assert_eq!(next, rows);
        }
    }

    #[test]
    fn a_shard_keeps_its_rows_and_share_of_the_size() {
        let x = Tensor::from_vec((0..12).map(|v| v as f32).collect(), &[6, 2]).unwrap();
        let y = Tensor::from_vec((0..6i64).collect::<Vec<_>>(), &[6]).unwrap();
        let b = Batch { x, y, size: 6 };
        let s = shard(&b, 2, 3).unwrap().unwrap();
        assert_eq!(s.x.to_vec::<f32>(), vec![8.0, 9.0, 10.0, 11.0]);
        assert_eq!(s.y.to_vec::<i64>(), vec![4, 5]);
        assert_eq!(s.size, 2);
        // Tokens: the size scales with the rows.
        let t = Batch {
            size: 6 * 35,
            ..b.clone()
        };
        assert_eq!(shard(&t, 0, 3).unwrap().unwrap().size, 2 * 35);
        let tiny = Batch {
            x: b.x.narrow(0, 0, 1).unwrap(),
            y: b.y.narrow(0, 0, 1).unwrap(),
            size: 1,
        };
        assert!(shard(&tiny, 0, 2).unwrap().is_none());
        assert!(shard(&tiny, 1, 2).unwrap().is_some());
    }

    #[test]
    fn one_rank_keeps_gradients_and_agrees_with_itself() {
        let comm = Comm::single();
        let p = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        let q = Tensor::from_vec(vec![3.0f32], &[1]).unwrap();
        p.set_grad(Some(Tensor::from_vec(vec![0.5f32, -0.5], &[2]).unwrap()));
        let sync = GradSync::new(comm.clone(), vec![p.clone(), q.clone()]);
        sync.begin_step();
        let (ctl, _) = sync.finish(&[1.0, 0.0]).unwrap();
        assert_eq!(ctl, vec![1.0, 0.0]);
        assert_eq!(p.grad().unwrap().to_vec::<f32>(), vec![0.5, -0.5]);
        assert!(q.grad().is_none());
        check_same_config(&comm, "anything").unwrap();
    }
}
