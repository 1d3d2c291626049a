//! The MPI back end: one thread initialises MPI, makes every MPI call and finalises it;
//! the rest of the program hands it jobs through a channel (see the crate docs).

use crate::{Backend, Collective, DistError, Payload, PendingInner, Result};
use mpi::collective::SystemOperation;
use mpi::traits::*;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

type Reply = Sender<Result<Payload>>;

enum Job {
    Run(Collective, Payload, Reply),
    Stop,
}

/// MPI through a communication thread.
pub(crate) struct MpiBackend {
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    rank: usize,
    size: usize,
    local_rank: usize,
    local_size: usize,
}

impl MpiBackend {
    /// Starts the communication thread, which initialises MPI.
    pub(crate) fn start() -> Result<MpiBackend> {
        let (ready_tx, ready_rx) = channel::<Result<[usize; 4]>>();
        let (jobs_tx, jobs_rx) = channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("d2l-mpi".into())
            .spawn(move || {
                let Some((universe, _level)) =
                    mpi::initialize_with_threading(mpi::Threading::Funneled)
                else {
                    let _ = ready_tx.send(Err(DistError(
                        "MPI could not be initialised (or was initialised twice)".into(),
                    )));
                    return;
                };
                let world = universe.world();
                let local = world.split_shared(world.rank());
                let ids = [
                    world.rank() as usize,
                    world.size() as usize,
                    local.rank() as usize,
                    local.size() as usize,
                ];
                if ready_tx.send(Ok(ids)).is_err() {
                    return;
                }
                while let Ok(job) = jobs_rx.recv() {
                    match job {
                        Job::Stop => break,
                        Job::Run(op, data, reply) => {
                            let _ = reply.send(run(&world, op, data));
                        }
                    }
                }
                drop(local);
                // Dropping the universe calls MPI_Finalize.
                drop(universe);
            })
            .map_err(|e| DistError(format!("cannot start the MPI thread: {e}")))?;
        let [rank, size, local_rank, local_size] = ready_rx
            .recv()
            .map_err(|_| DistError("the MPI thread ended during MPI_Init".into()))??;
        Ok(MpiBackend {
            jobs: Mutex::new(Some(jobs_tx)),
            thread: Mutex::new(Some(thread)),
            rank,
            size,
            local_rank,
            local_size,
        })
    }
}

/// One collective on the communication thread.
fn run(
    world: &mpi::topology::SimpleCommunicator,
    op: Collective,
    data: Payload,
) -> Result<Payload> {
    match (op, data) {
        (Collective::Barrier, p) => {
            world.barrier();
            Ok(p)
        }
        (Collective::AllreduceSum, Payload::F32(v)) => {
            let mut out = vec![0.0f32; v.len()];
            world.all_reduce_into(&v[..], &mut out[..], SystemOperation::sum());
            Ok(Payload::F32(out))
        }
        (Collective::AllreduceSum, Payload::F64(v)) => {
            let mut out = vec![0.0f64; v.len()];
            world.all_reduce_into(&v[..], &mut out[..], SystemOperation::sum());
            Ok(Payload::F64(out))
        }
        (Collective::Broadcast { root }, Payload::F32(mut v)) => {
            world
                .process_at_rank(root as i32)
                .broadcast_into(&mut v[..]);
            Ok(Payload::F32(v))
        }
        (Collective::BroadcastBytes { root }, Payload::U8(mut v)) => {
            let root_proc = world.process_at_rank(root as i32);
            let mut len = v.len() as u64;
            root_proc.broadcast_into(&mut len);
            v.resize(len as usize, 0);
            root_proc.broadcast_into(&mut v[..]);
            Ok(Payload::U8(v))
        }
        (op, _) => Err(DistError(format!(
            "the MPI back end has no {op:?} for this buffer type"
        ))),
    }
}

impl Backend for MpiBackend {
    fn name(&self) -> &'static str {
        "mpi"
    }
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn local_size(&self) -> usize {
        self.local_size
    }

    fn submit(&self, op: Collective, data: Payload) -> Result<PendingInner> {
        let (tx, rx) = channel();
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let sender = jobs
            .as_ref()
            .ok_or_else(|| DistError("the MPI communicator was shut down".into()))?;
        sender
            .send(Job::Run(op, data, tx))
            .map_err(|_| DistError("the MPI thread has ended".into()))?;
        Ok(PendingInner::Waiting(rx))
    }

    fn shutdown(&self) {
        if let Some(tx) = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(Job::Stop);
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }

    fn abort(&self, code: i32) -> ! {
        // MPI_Abort from this thread (the communication thread may be blocked in a
        // collective that will never finish): Open MPI ends every rank of the job.
        // SAFETY: MPI was initialised by the communication thread; MPI_Abort is the
        // standard's way to end a job from a failing process and does not return.
        unsafe {
            mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, code);
        }
        std::process::exit(code)
    }
}

impl Drop for MpiBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}
