//! Communication for data-parallel training (PyTorch's `torch.distributed`, Horovod's
//! `hvd`): a [`Comm`] knows this process's rank among the job's processes and runs the
//! collectives the trainer needs — sum-allreduce of `f32` (gradients) and `f64` (metric
//! sums) buffers, blocking or started in the background, broadcast from a root, and a
//! barrier.
//!
//! | back end | built | started by |
//! |---|---|---|
//! | single process | always | a plain `d2l ...` (every collective is the identity) |
//! | MPI | cargo feature `mpi` (rsmpi over the system's Open MPI or MPICH) | `mpirun -np N`, `srun` |
//!
//! The MPI back end runs every MPI call on one background thread (Horovod's design): the
//! caller hands a buffer over and gets a [`Pending`] back, so an allreduce can run while
//! the caller keeps computing, and MPI only ever sees one thread (`MPI_THREAD_FUNNELED`).
//! Jobs run in the order they were handed over, which is the order MPI needs: every rank
//! must call the collectives in the same order with the same lengths.
//!
//! NCCL (GPUs) is not built here yet; see `docs/DISTRIBUTED.md`.
//!
//! ```
//! let comm = d2l_dist::Comm::single();
//! let mut grads = vec![1.0f32, 2.0];
//! comm.allreduce_sum(&mut grads).unwrap();
//! assert_eq!(grads, [1.0, 2.0]); // one rank: the sum is the buffer itself
//! ```

use std::fmt;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

#[cfg(feature = "mpi")]
mod mpi_backend;

/// An error of the communication layer (a failed start, a shut-down communicator, a
/// collective the back end refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistError(pub String);

impl fmt::Display for DistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DistError {}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, DistError>;

/// A buffer on its way through a collective.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U8(Vec<u8>),
    Empty,
}

/// What a back end is asked to do with a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collective {
    /// Element-wise sum over the ranks; every rank gets the sum.
    AllreduceSum,
    /// Every rank gets the root's buffer (same length on every rank).
    Broadcast { root: usize },
    /// Every rank gets the root's bytes (any length on the other ranks).
    BroadcastBytes { root: usize },
    /// Returns once every rank has called it.
    Barrier,
}

/// What every back end provides.
pub(crate) trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    fn local_rank(&self) -> usize;
    fn local_size(&self) -> usize;
    /// Starts a collective; the result comes through the returned [`Pending`].
    fn submit(&self, op: Collective, data: Payload) -> Result<PendingInner>;
    /// Finishes the back end (MPI_Finalize); later collectives are errors.
    fn shutdown(&self);
    /// Ends the whole job at once with `code` (every rank).
    fn abort(&self, code: i32) -> !;
}

/// The result of a collective that was started and not yet waited for.
pub(crate) enum PendingInner {
    Ready(Payload),
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    Waiting(Receiver<Result<Payload>>),
}

impl PendingInner {
    fn wait(self) -> Result<Payload> {
        match self {
            PendingInner::Ready(p) => Ok(p),
            PendingInner::Waiting(rx) => rx.recv().map_err(|_| {
                DistError("the communication thread ended before finishing a collective".into())
            })?,
        }
    }
}

/// A sum-allreduce started with [`Comm::start_allreduce_sum`]; [`Pending::wait`] gives
/// the summed buffer.
pub struct Pending(PendingInner);

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            PendingInner::Ready(_) => "Pending(ready)",
            PendingInner::Waiting(_) => "Pending(running)",
        })
    }
}

impl Pending {
    /// Waits for the allreduce and returns the summed buffer.
    pub fn wait(self) -> Result<Vec<f32>> {
        match self.0.wait()? {
            Payload::F32(v) => Ok(v),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(p: &Payload) -> DistError {
    DistError(format!(
        "the back end returned a {} buffer for an f32 collective",
        match p {
            Payload::F32(_) => "f32",
            Payload::F64(_) => "f64",
            Payload::U8(_) => "byte",
            Payload::Empty => "empty",
        }
    ))
}

/// How the process was started: the launcher whose environment variables it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// `"mpirun (Open MPI)"`, `"srun (Slurm)"`, `"mpiexec (PMI)"`, `"PMIx"`.
    pub name: &'static str,
    /// The number of processes the launcher says the job has, when it says.
    pub size: Option<usize>,
}

/// The launcher this process was started by, from its environment variables (Open MPI's
/// `OMPI_COMM_WORLD_SIZE`, Slurm's `SLURM_STEP_NUM_TASKS`, Hydra's `PMI_SIZE`, PMIx's
/// `PMIX_RANK`), or `None` for a plain start.
pub fn launcher() -> Option<Launcher> {
    launcher_from(|k| std::env::var(k).ok())
}

fn launcher_from(get: impl Fn(&str) -> Option<String>) -> Option<Launcher> {
    let num = |k: &str| get(k).and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(n) = num("OMPI_COMM_WORLD_SIZE") {
        return Some(Launcher {
            name: "mpirun (Open MPI)",
            size: Some(n),
        });
    }
    if let Some(n) = num("SLURM_STEP_NUM_TASKS") {
        // An `srun` step (a batch script's own shell has no step task count).
        if get("SLURM_STEP_ID").is_some() {
            return Some(Launcher {
                name: "srun (Slurm)",
                size: Some(n),
            });
        }
    }
    if let Some(n) = num("PMI_SIZE") {
        return Some(Launcher {
            name: "mpiexec (PMI)",
            size: Some(n),
        });
    }
    if get("PMIX_RANK").is_some() {
        return Some(Launcher {
            name: "PMIx",
            size: None,
        });
    }
    None
}

/// Whether this build has the MPI back end (the cargo feature `mpi`).
pub const HAS_MPI: bool = cfg!(feature = "mpi");

/// A communicator over the job's processes; clones share it. See the crate docs.
#[derive(Clone)]
pub struct Comm {
    inner: Arc<dyn Backend>,
    note: Option<String>,
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Comm({} rank {} of {})",
            self.inner.name(),
            self.inner.rank(),
            self.inner.size()
        )
    }
}

struct Single;

impl Backend for Single {
    fn name(&self) -> &'static str {
        "single"
    }
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn local_size(&self) -> usize {
        1
    }
    fn submit(&self, _op: Collective, data: Payload) -> Result<PendingInner> {
        // One rank: a sum or a broadcast is the buffer itself.
        Ok(PendingInner::Ready(data))
    }
    fn shutdown(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

impl Comm {
    /// The single-process communicator: rank 0 of 1, every collective the identity.
    pub fn single() -> Comm {
        Comm {
            inner: Arc::new(Single),
            note: None,
        }
    }

    /// The communicator of this process: MPI when a launcher started it (and the build has
    /// the `mpi` feature), else one rank with a [`Comm::note`] saying so. A launcher with
    /// several processes and a build without MPI is an error (the processes would
    /// otherwise train independently and overwrite each other's files).
    pub fn init() -> Result<Comm> {
        match launcher() {
            None => Ok(Comm {
                inner: Arc::new(Single),
                note: Some(
                    "no MPI launcher found (mpirun, mpiexec or srun): running as one rank".into(),
                ),
            }),
            Some(l) => {
                #[cfg(feature = "mpi")]
                {
                    let _ = &l;
                    Ok(Comm {
                        inner: Arc::new(mpi_backend::MpiBackend::start()?),
                        note: None,
                    })
                }
                #[cfg(not(feature = "mpi"))]
                {
                    match l.size {
                        Some(n) if n <= 1 => Ok(Comm {
                            inner: Arc::new(Single),
                            note: Some(format!(
                                "started by {} with one process: running as one rank",
                                l.name
                            )),
                        }),
                        n => Err(DistError(format!(
                            "started by {}{} but this d2l was built without MPI: rebuild it with `cargo build --release --features mpi` (needs Open MPI and libclang; see docs/DISTRIBUTED.md)",
                            l.name,
                            n.map(|n| format!(" with {n} processes")).unwrap_or_default()
                        ))),
                    }
                }
            }
        }
    }

    /// The back end's name (`"single"`, `"mpi"`).
    pub fn backend(&self) -> &'static str {
        self.inner.name()
    }

    /// A remark on how the communicator was chosen (`--distributed` without a launcher).
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.inner.rank()
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.inner.size()
    }

    /// This process's rank among the processes on its machine.
    pub fn local_rank(&self) -> usize {
        self.inner.local_rank()
    }

    /// The number of processes on this machine.
    pub fn local_size(&self) -> usize {
        self.inner.local_size()
    }

    /// Whether this is rank 0 (the one that prints and writes files).
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Sums `buf` element-wise over the ranks, in place, and waits for it.
    pub fn allreduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let out = self.start_allreduce_sum(buf.to_vec())?.wait()?;
        copy_back(buf, &out)
    }

    /// Starts summing `buf` over the ranks in the background; [`Pending::wait`] returns
    /// the sum. Collectives run in the order they are started.
    pub fn start_allreduce_sum(&self, buf: Vec<f32>) -> Result<Pending> {
        Ok(Pending(
            self.inner
                .submit(Collective::AllreduceSum, Payload::F32(buf))?,
        ))
    }

    /// Sums `buf` element-wise over the ranks, in place (metric sums, counts).
    pub fn allreduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        match self
            .inner
            .submit(Collective::AllreduceSum, Payload::F64(buf.to_vec()))?
            .wait()?
        {
            Payload::F64(v) => copy_back(buf, &v),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces `buf` with rank `root`'s `buf` (the same length on every rank).
    pub fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        self.check_root(root)?;
        match self
            .inner
            .submit(Collective::Broadcast { root }, Payload::F32(buf.to_vec()))?
            .wait()?
        {
            Payload::F32(v) => copy_back(buf, &v),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces `bytes` with rank `root`'s bytes (any length on the other ranks).
    pub fn broadcast_bytes(&self, bytes: &mut Vec<u8>, root: usize) -> Result<()> {
        self.check_root(root)?;
        match self
            .inner
            .submit(
                Collective::BroadcastBytes { root },
                Payload::U8(std::mem::take(bytes)),
            )?
            .wait()?
        {
            Payload::U8(v) => {
                *bytes = v;
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Every rank's `value`, in rank order, on every rank (exact for all 64 bits).
    pub fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        // Four 16-bit pieces per rank in an f64 sum: exact, since only one rank adds to
        // each slot.
        let n = self.size();
        let mut slots = vec![0.0f64; 4 * n];
        for k in 0..4 {
            slots[4 * self.rank() + k] = ((value >> (16 * k)) & 0xffff) as f64;
        }
        self.allreduce_sum_f64(&mut slots)?;
        Ok((0..n)
            .map(|r| (0..4).fold(0u64, |acc, k| acc | ((slots[4 * r + k] as u64) << (16 * k))))
            .collect())
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        self.inner
            .submit(Collective::Barrier, Payload::Empty)?
            .wait()
            .map(|_| ())
    }

    /// Finishes the back end (`MPI_Finalize` on the MPI back end) once the job is done; a
    /// collective after it is an error. Dropping the last clone does the same.
    pub fn shutdown(&self) {
        self.inner.shutdown()
    }

    /// Ends the whole job at once with exit status `code` (every rank; `MPI_Abort`), after
    /// a rank failed.
    pub fn abort(&self, code: i32) -> ! {
        self.inner.abort(code)
    }

    fn check_root(&self, root: usize) -> Result<()> {
        if root >= self.size() {
            return Err(DistError(format!(
                "root rank {root} is out of range for {} ranks",
                self.size()
            )));
        }
        Ok(())
    }
}

fn copy_back<T: Copy>(buf: &mut [T], out: &[T]) -> Result<()> {
    if out.len() != buf.len() {
        return Err(DistError(format!(
            "a collective returned {} values for a buffer of {}",
            out.len(),
            buf.len()
        )));
    }
    buf.copy_from_slice(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_detection_reads_the_launchers_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(launcher_from(env(&[])), None);
        let l = launcher_from(env(&[("OMPI_COMM_WORLD_SIZE", "3")])).unwrap();
        assert_eq!(l.size, Some(3));
        assert!(l.name.contains("Open MPI"));
        // A Slurm batch shell (no step) is not a launch; an srun step is.
        assert_eq!(launcher_from(env(&[("SLURM_STEP_NUM_TASKS", "4")])), None);
        let l = launcher_from(env(&[
            ("SLURM_STEP_NUM_TASKS", "4"),
            ("SLURM_STEP_ID", "0"),
        ]))
        .unwrap();
        assert_eq!((l.name, l.size), ("srun (Slurm)", Some(4)));
        assert_eq!(
            launcher_from(env(&[("PMI_SIZE", "2")])).unwrap().size,
            Some(2)
        );
        assert_eq!(
            launcher_from(env(&[("PMIX_RANK", "0")])).unwrap().size,
            None
        );
    }
}
