//! End-to-end benchmarks: the peer workloads W1–W5 of `../shared/bench/WORKLOADS.md`
//! and any zoo model, timed with exactly that page's protocol so that the numbers can be
//! put beside PyTorch's (`torch_bench.py`) as ratios.
//!
//! The protocol ([`Protocol::measure`]): warm up for at least 3 steps and at least 1 s;
//! time one more step; run `n = ceil(1 s / t_step)` steps per repetition; 5 repetitions;
//! report the median throughput. Inputs are one synthetic batch made before timing
//! (N(0, 1) images, uniform labels, seed 0). A training step is `drop grads → forward →
//! mean cross-entropy → backward → p -= 0.1·grad`; an inference step is a forward pass in
//! evaluation mode without autograd.
//!
//! Each measurement becomes one [`Record`], printed as the same JSON line the PyTorch
//! script prints (`peer`, `workload`, `name`, `metric`, `value`, `unit`,
//! `median_step_ms`, `reps`, `steps_per_rep`, `threads`, `batch`, `rss_before_mb`,
//! `peak_rss_mb`, …, and `cpu`: the kernels' SIMD path, `scalar`, `avx2` or `avx512`,
//! which `D2L_CPU` can lower; `gemm`: which f32 GEMM ran), so the two outputs join on `workload` + `name` + `metric`.
//! Peak RSS is the process's `VmHWM`; run one workload per process (as `d2l bench`
//! does) for it to be that workload's own.
//!
//! On a GPU ([`BenchConfig::device`]) the model and the synthetic batch are moved there
//! before timing, the clock is read only after [`d2l_tensor::cuda::synchronize`], and
//! each record also carries the device's peak allocated memory during its measurement
//! (`gpu_peak_mb`, `peak_device_bytes`; the peak is reset before each measurement).

use d2l_models::zoo::{self, BuildConfig};
use d2l_nn::conv::Conv2d;
use d2l_nn::layers::{Flatten, Linear, ReLU, Sigmoid};
use d2l_nn::loss::cross_entropy;
use d2l_nn::pool::AvgPool2d;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{cuda, no_grad, profile, Device, Error, Generator, Result, Tensor};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The learning rate of every benchmark training step.
pub const LR: f64 = 0.1;
/// The seed of the synthetic batch and of initialisation.
pub const SEED: u64 = 0;

/// How long and how often to measure (WORKLOADS.md's timing rules).
#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    /// Timed repetitions; the median throughput is reported (5).
    pub reps: usize,
    /// Seconds each repetition should last (1.0).
    pub target_rep_s: f64,
    /// Minimum warm-up time in seconds (1.0).
    pub warmup_s: f64,
    /// Minimum warm-up steps (3).
    pub warmup_min: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            reps: 5,
            target_rep_s: 1.0,
            warmup_s: 1.0,
            warmup_min: 3,
        }
    }
}

/// The result of timing one step function.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Median throughput over the repetitions (work units per second).
    pub value: f64,
    /// Each repetition's throughput.
    pub reps: Vec<f64>,
    /// Steps per repetition.
    pub steps_per_rep: usize,
    /// Median seconds per step.
    pub median_step_s: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

impl Protocol {
    /// The default protocol with `BENCH_REPS` and `BENCH_TARGET_S` from the environment
    /// when set (the PyTorch script reads the same variables for quick runs).
    pub fn from_env() -> Result<Protocol> {
        let mut p = Protocol::default();
        if let Ok(v) = std::env::var("BENCH_REPS") {
            p.reps =
                v.trim().parse().ok().filter(|&r| r > 0).ok_or_else(|| {
                    bad(format!("BENCH_REPS must be a positive integer, got `{v}`"))
                })?;
        }
        if let Ok(v) = std::env::var("BENCH_TARGET_S") {
            p.target_rep_s = v
                .trim()
                .parse()
                .ok()
                .filter(|&t: &f64| t > 0.0 && t.is_finite())
                .ok_or_else(|| {
                    bad(format!(
                        "BENCH_TARGET_S must be positive seconds, got `{v}`"
                    ))
                })?;
        }
        Ok(p)
    }

    /// Warms up, calibrates the steps per repetition, times the repetitions.
    /// `work_per_step` is images, tokens or FLOPs per step.
    pub fn measure(
        &self,
        step: impl FnMut() -> Result<()>,
        work_per_step: f64,
    ) -> Result<Measurement> {
        self.measure_on(Device::Cpu, step, work_per_step)
    }

    /// [`Protocol::measure`] for steps that run on `device`: waits for the device's
    /// queued work (`cuda::synchronize`) before every reading of the clock, so that the
    /// times are those of the computation, not of queueing it.
    pub fn measure_on(
        &self,
        device: Device,
        mut step: impl FnMut() -> Result<()>,
        work_per_step: f64,
    ) -> Result<Measurement> {
        let sync = || cuda::synchronize(device);
        let t0 = Instant::now();
        let mut n = 0;
        while n < self.warmup_min || t0.elapsed().as_secs_f64() < self.warmup_s {
            step()?;
            sync()?;
            n += 1;
        }
        let t1 = Instant::now();
        step()?;
        sync()?;
        let one = t1.elapsed().as_secs_f64();
        let steps = ((self.target_rep_s / one.max(1e-9)).ceil() as usize).max(1);
        let mut rates = Vec::with_capacity(self.reps);
        let mut per_step = Vec::with_capacity(self.reps);
        for _ in 0..self.reps {
            let t = Instant::now();
            for _ in 0..steps {
                step()?;
            }
            sync()?;
            let dt = t.elapsed().as_secs_f64();
            rates.push(work_per_step * steps as f64 / dt);
            per_step.push(dt / steps as f64);
        }
        Ok(Measurement {
            value: median(&rates),
            reps: rates,
            steps_per_rep: steps,
            median_step_s: median(&per_step),
        })
    }
}

fn bad(msg: String) -> Error {
    Error::InvalidArgument { op: "bench", msg }
}

/// `VmHWM` (peak RSS) or `VmRSS` of this process in MiB, from `/proc/self/status`
/// (`NaN` where that file does not exist).
pub fn proc_status_mb(field: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return f64::NAN;
    };
    s.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One measurement, printed as one JSON line.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `"W1"` … `"W5"`, or a zoo model's name.
    pub workload: String,
    /// `"mlp"`, `"lenet"`, `"char_rnn"`, `"matmul_1024"`, …
    pub name: String,
    /// `"train_images_per_s"`, `"infer_images_per_s"`, `"train_tokens_per_s"`, `"gflops"`.
    pub metric: String,
    /// `"images/s"`, `"tokens/s"`, `"GFLOP/s"`.
    pub unit: String,
    /// The timing.
    pub m: Measurement,
    /// Intra-op threads.
    pub threads: usize,
    /// The device the workload ran on.
    pub device: Device,
    /// Workload-specific fields (`batch`, `rss_before_mb`, `peak_rss_mb`, shapes, …).
    pub extra: Map<String, Value>,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The fields of a JSON object literal (`json!({...})`) as a record's `extra` map.
fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// This process's peak RSS in MiB, rounded as the JSON lines print it.
fn peak_rss() -> f64 {
    round(proc_status_mb("VmHWM"), 1)
}

impl Record {
    /// A record of workload `workload`, measurement `name`, `(metric, unit)`.
    fn new(
        cfg: &BenchConfig,
        workload: &str,
        name: &str,
        (metric, unit): (&str, &str),
        m: Measurement,
        extra: Map<String, Value>,
    ) -> Record {
        let mut extra = extra;
        if let Some(stats) = cuda::memory_stats(cfg.device) {
            let peak = stats.peak_allocated;
            extra.insert("peak_device_bytes".into(), json!(peak));
            extra.insert(
                "gpu_peak_mb".into(),
                json!(round(peak as f64 / (1024.0 * 1024.0), 1)),
            );
        }
        Record {
            workload: workload.into(),
            name: name.into(),
            metric: metric.into(),
            unit: unit.into(),
            m,
            threads: cfg.threads,
            device: cfg.device,
            extra,
        }
    }

    /// The record as the JSON object `torch_bench.py` prints (with `peer: "d2l-rs"`).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("peer".into(), json!("d2l-rs"));
        o.insert("workload".into(), json!(self.workload));
        o.insert("name".into(), json!(self.name));
        o.insert("metric".into(), json!(self.metric));
        o.insert("value".into(), json!(round(self.m.value, 3)));
        o.insert("unit".into(), json!(self.unit));
        o.insert(
            "median_step_ms".into(),
            json!(round(self.m.median_step_s * 1e3, 4)),
        );
        o.insert(
            "reps".into(),
            json!(self.m.reps.iter().map(|&r| round(r, 3)).collect::<Vec<_>>()),
        );
        o.insert("steps_per_rep".into(), json!(self.m.steps_per_rep));
        o.insert("threads".into(), json!(self.threads));
        o.insert("device".into(), json!(self.device.to_string()));
        // The SIMD path of the CPU kernels (`D2L_CPU` lowers it) and the f32 GEMM.
        o.insert("cpu".into(), json!(d2l_tensor::cpu_path().name()));
        o.insert("gemm".into(), json!(d2l_tensor::sgemm_name()));
        for (k, v) in &self.extra {
            o.insert(k.clone(), v.clone());
        }
        Value::Object(o)
    }
}

/// What a benchmark run produces: records, and with profiling on, one per-op table per
/// step kind.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The measurements, in order.
    pub records: Vec<Record>,
    /// `(label, table)` pairs from [`profile::report`] (empty unless profiling).
    pub profiles: Vec<(String, String)>,
}

/// Settings shared by every workload.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The timing protocol.
    pub protocol: Protocol,
    /// Intra-op threads (recorded; the caller sets the engine's thread count).
    pub threads: usize,
    /// Also time one step per step kind with the op profiler and keep its table.
    pub profile: bool,
    /// Where the workloads run (the CPU by default; `d2l bench --device`).
    pub device: Device,
}

impl BenchConfig {
    /// Times `step` on this configuration's device with its protocol, after resetting the
    /// device's peak memory (so that the record made next reports this measurement's).
    pub fn measure(
        &self,
        step: impl FnMut() -> Result<()>,
        work_per_step: f64,
    ) -> Result<Measurement> {
        cuda::reset_peak_memory(self.device);
        self.protocol.measure_on(self.device, step, work_per_step)
    }
}

/// The peer workloads, in order.
pub const WORKLOADS: [&str; 5] = ["W1", "W2", "W3", "W4", "W5"];

/// Runs one workload (`"W1"` … `"W5"`) or zoo model (`"alexnet"`, …) in this process.
pub fn run(workload: &str, cfg: &BenchConfig) -> Result<Outcome> {
    d2l_tensor::manual_seed(SEED);
    let mut out = Outcome::default();
    match workload.to_ascii_uppercase().as_str() {
        "W1" => image_workload(
            &mut out,
            cfg,
            "W1",
            "mlp",
            &mlp()?,
            &[1, 28, 28],
            256,
            false,
        )?,
        "W2" => image_workload(
            &mut out,
            cfg,
            "W2",
            "lenet",
            &lenet()?,
            &[1, 28, 28],
            256,
            true,
        )?,
        "W3" => {
            let info = zoo::model("resnet18")?;
            let net = info.build(&BuildConfig::new(&[1, 96, 96], 10))?;
            image_workload(
                &mut out,
                cfg,
                "W3",
                "resnet18",
                &net,
                &[1, 96, 96],
                32,
                true,
            )?
        }
        "W4" => {
            char_lm(&mut out, cfg, "char_rnn")?;
            char_lm(&mut out, cfg, "char_gru")?;
        }
        "W5" => kernels(&mut out, cfg)?,
        "TINY-SSD" => tiny_ssd(&mut out, cfg)?,
        _ => {
            let info = zoo::model(workload)?;
            let cfg_m = info.config_for(info.recipe.resize);
            if cfg_m.in_shape.len() != 3 {
                return Err(bad(format!(
                    "`{}` is not an image model; benchmarks time image classifiers, \
                     the workloads {} and the zoo's CNNs",
                    info.name,
                    WORKLOADS.join(", ")
                )));
            }
            let net = info.build(&cfg_m)?;
            let batch = info.recipe.batch_size;
            image_workload(
                &mut out,
                cfg,
                info.name,
                info.name,
                &net,
                &cfg_m.in_shape,
                batch,
                true,
            )?
        }
    }
    Ok(out)
}

/// W1: `Flatten → Linear(784, 256) → ReLU → Linear(256, 10)`, default initialisation.
pub fn mlp() -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Flatten::new())
        .add(Linear::new(784, 256)?)
        .add(ReLU)
        .add(Linear::new(256, 10)?))
}

/// W2: the LeNet of D2L 6.6 (sigmoid, average pooling), default initialisation.
pub fn lenet() -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Conv2d::builder(1, 6, 5).padding(2).build()?)
        .add(Sigmoid)
        .add(AvgPool2d::new(2).stride(2))
        .add(Conv2d::builder(6, 16, 5).build()?)
        .add(Sigmoid)
        .add(AvgPool2d::new(2).stride(2))
        .add(Flatten::new())
        .add(Linear::new(400, 120)?)
        .add(Sigmoid)
        .add(Linear::new(120, 84)?)
        .add(Sigmoid)
        .add(Linear::new(84, 10)?))
}

/// One synthetic batch: images N(0, 1) of `shape` and labels uniform in 0..`classes`.
pub fn synthetic_batch(batch: usize, shape: &[usize], classes: usize) -> Result<(Tensor, Tensor)> {
    let mut g = Generator::new(SEED);
    let mut full = vec![batch];
    full.extend_from_slice(shape);
    let x = Tensor::randn_with(&mut g, &full);
    let labels: Vec<i64> = (0..batch).map(|_| g.below(classes as u64) as i64).collect();
    let y = Tensor::from_vec(labels, &[batch])?;
    Ok((x, y))
}

/// `p -= lr · grad` for every parameter with a gradient, without autograd.
pub fn sgd_update(params: &[Tensor], lr: f64) -> Result<()> {
    no_grad(|| {
        for p in params {
            if let Some(g) = p.grad() {
                p.add_scaled_(&g, -lr)?;
            }
        }
        Ok(())
    })
}

/// One training step of the protocol: drop grads, forward, mean cross-entropy, backward,
/// optional global-norm clipping, SGD.
pub fn train_step(
    net: &dyn Module,
    params: &[Tensor],
    x: &Tensor,
    y: &Tensor,
    clip: Option<f64>,
) -> Result<()> {
    for p in params {
        p.zero_grad();
    }
    let loss = cross_entropy(&net.forward(x)?, y)?;
    loss.backward()?;
    if let Some(c) = clip {
        d2l_nn::clip::clip_grad_norm_(params, c)?;
    }
    sgd_update(params, LR)
}

/// Runs `step` once under the op profiler and returns its table.
pub fn profile_once(step: &mut dyn FnMut() -> Result<()>) -> Result<String> {
    profile::take();
    profile::enable(true);
    let t = Instant::now();
    let r = step();
    let wall = t.elapsed();
    profile::enable(false);
    r?;
    let rows = profile::take();
    Ok(format!(
        "{}(wall {:.3} ms; the rest is outside the engine's ops)\n",
        profile::report(&rows),
        wall.as_secs_f64() * 1e3
    ))
}

#[allow(clippy::too_many_arguments)]
fn image_workload(
    out: &mut Outcome,
    cfg: &BenchConfig,
    workload: &str,
    name: &str,
    net: &dyn Module,
    shape: &[usize],
    batch: usize,
    with_infer: bool,
) -> Result<()> {
    let (x, y) = synthetic_batch(batch, shape, 10)?;
    let (x, y) = (x.to(cfg.device)?, y.to(cfg.device)?);
    crate::device::to_device(net, cfg.device)?;
    let params = net.parameters();
    let base = proc_status_mb("VmRSS");
    net.train();
    let mut step = || train_step(net, &params, &x, &y, None);
    let m = cfg.measure(&mut step, batch as f64)?;
    if cfg.profile {
        out.profiles
            .push((format!("{name} train step"), profile_once(&mut step)?));
    }
    let extra = fields(json!({
        "batch": batch,
        "rss_before_mb": round(base, 1),
        "peak_rss_mb": peak_rss(),
    }));
    out.records.push(Record::new(
        cfg,
        workload,
        name,
        ("train_images_per_s", "images/s"),
        m,
        extra,
    ));
    if with_infer {
        net.eval();
        let mut infer = || no_grad(|| net.forward(&x).map(|_| ()));
        let m = cfg.measure(&mut infer, batch as f64)?;
        if cfg.profile {
            out.profiles
                .push((format!("{name} inference step"), profile_once(&mut infer)?));
        }
        let extra = fields(json!({"batch": batch, "peak_rss_mb": peak_rss()}));
        out.records.push(Record::new(
            cfg,
            workload,
            name,
            ("infer_images_per_s", "images/s"),
            m,
            extra,
        ));
    }
    Ok(())
}

/// The workloads besides W1–W5 and the zoo's CNNs.
pub const EXTRA_WORKLOADS: [&str; 1] = ["tiny-ssd"];

/// TinySSD (D2L 13.7): the book's training step — forward, `multibox_target`, the class +
/// masked L1 loss averaged over the batch, backward, SGD lr 0.2 with weight decay 5e-4 —
/// on one synthetic batch of 32 images 3×256×256 (pixels uniform in 0–255, one random box
/// each, as `scripts/ssd_torch.py bench`). Also records the share of the step spent in
/// `multibox_target`.
fn tiny_ssd(out: &mut Outcome, cfg: &BenchConfig) -> Result<()> {
    use d2l_models::ssd::{ssd_loss, BoxLoss, ClsLoss, TinySsd};
    use d2l_nn::optim::{Optimizer, Sgd};
    use d2l_vision::detection::{multibox_prior, multibox_target};
    let batch = 32;
    let net = TinySsd::new(1, multibox_prior)?;
    let mut g = Generator::new(SEED);
    let x = Tensor::rand_with(&mut g, &[batch, 3, 256, 256]).mul_scalar(255.0)?;
    let mut labels = Vec::with_capacity(batch * 5);
    for _ in 0..batch {
        let (x1, y1) = (0.6 * g.next_f64(), 0.6 * g.next_f64());
        let (w, h) = (0.1 + 0.3 * g.next_f64(), 0.1 + 0.3 * g.next_f64());
        labels.extend([0.0, x1 as f32, y1 as f32, (x1 + w) as f32, (y1 + h) as f32]);
    }
    let y = Tensor::from_vec(labels, &[batch, 1, 5])?;
    let (x, y) = (x.to(cfg.device)?, y.to(cfg.device)?);
    crate::device::to_device(&net, cfg.device)?;
    let mut opt = Sgd::new(net.parameters(), 0.2)?.weight_decay(5e-4);
    let base = proc_status_mb("VmRSS");
    let mut target_s = 0.0;
    let mut step_s = 0.0;
    net.train();
    let mut step = || -> Result<()> {
        let t = Instant::now();
        opt.zero_grad();
        let o = net.forward_ssd(&x)?;
        let t0 = Instant::now();
        let (bl, bm, cl) = multibox_target(&o.anchors, &y)?;
        target_s += t0.elapsed().as_secs_f64();
        let l = ssd_loss(
            &o.cls_preds,
            &cl,
            &o.bbox_preds,
            &bl,
            &bm,
            ClsLoss::CrossEntropy,
            BoxLoss::L1,
        )?;
        l.mean_all()?.backward()?;
        opt.step()?;
        step_s += t.elapsed().as_secs_f64();
        Ok(())
    };
    let m = cfg.measure(&mut step, batch as f64)?;
    if cfg.profile {
        out.profiles
            .push(("tiny-ssd train step".into(), profile_once(&mut step)?));
    }
    let extra = fields(json!({
        "batch": batch,
        "input": [3, 256, 256],
        "target_share": round(target_s / step_s.max(1e-9), 4),
        "rss_before_mb": round(base, 1),
        "peak_rss_mb": peak_rss(),
    }));
    out.records.push(Record::new(
        cfg,
        "tiny-ssd",
        "tiny-ssd",
        ("train_images_per_s", "images/s"),
        m,
        extra,
    ));
    Ok(())
}

/// W4: the D2L 8.6 character language model step — one-hot `[35, 32, 28]` made inside
/// the step, `RNN(28 → 256)` or `GRU(28 → 256)` from a zero state, `Linear(256 → 28)` on
/// the `[1120, 256]` outputs, mean cross-entropy, backward, global-norm clipping to 1,
/// SGD lr 0.1. Throughput in tokens (batch × steps) per second.
fn char_lm(out: &mut Outcome, cfg: &BenchConfig, name: &str) -> Result<()> {
    use d2l_nn::rnn::{one_hot, Recurrent, GRU, RNN};
    let (vocab, hidden, steps, batch) = (28usize, 256usize, 35usize, 32usize);
    let mut g = Generator::new(SEED);
    let mut ids = |n: usize| -> Result<Tensor> {
        let v: Vec<i64> = (0..n).map(|_| g.below(vocab as u64) as i64).collect();
        Tensor::from_vec(v, &[batch, steps])
    };
    let tokens = ids(batch * steps)?.to(cfg.device)?;
    let targets = ids(batch * steps)?
        .t()?
        .contiguous()?
        .reshape([steps * batch])?
        .to(cfg.device)?;
    let rnn: Box<dyn Recurrent> = if name == "char_gru" {
        Box::new(GRU::new(vocab, hidden)?)
    } else {
        Box::new(RNN::new(vocab, hidden)?)
    };
    let head = Linear::new(hidden, vocab)?;
    crate::device::to_device(rnn.as_dyn(), cfg.device)?;
    crate::device::to_device(&head, cfg.device)?;
    let mut params = rnn.parameters();
    params.extend(head.parameters());
    let mut step = || -> Result<()> {
        for p in &params {
            p.zero_grad();
        }
        let x = one_hot(&tokens.t()?, vocab)?;
        let (y, _state) = rnn.forward_with_state(&x, None)?;
        let logits = head.forward(&y.reshape([steps * batch, hidden])?)?;
        cross_entropy(&logits, &targets)?.backward()?;
        d2l_nn::clip::clip_grad_norm_(&params, 1.0)?;
        sgd_update(&params, LR)
    };
    let m = cfg.measure(&mut step, (batch * steps) as f64)?;
    if cfg.profile {
        out.profiles
            .push((format!("{name} train step"), profile_once(&mut step)?));
    }
    let extra = fields(json!({
        "batch": batch,
        "num_steps": steps,
        "hidden": hidden,
        "vocab": vocab,
        "peak_rss_mb": peak_rss(),
    }));
    out.records.push(Record::new(
        cfg,
        "W4",
        name,
        ("train_tokens_per_s", "tokens/s"),
        m,
        extra,
    ));
    Ok(())
}

fn gflops_record(
    cfg: &BenchConfig,
    name: &str,
    m: Measurement,
    extra: Map<String, Value>,
) -> Record {
    let m = Measurement {
        value: m.value / 1e9,
        reps: m.reps.iter().map(|r| r / 1e9).collect(),
        ..m
    };
    Record::new(cfg, "W5", name, ("gflops", "GFLOP/s"), m, extra)
}

/// W5: a 1024³ matmul and the 64→64 3×3 convolution on `[32, 64, 28, 28]`.
fn kernels(out: &mut Outcome, cfg: &BenchConfig) -> Result<()> {
    let mut g = Generator::new(SEED);
    let n = 1024;
    let a = Tensor::randn_with(&mut g, &[n, n]).to(cfg.device)?;
    let b = Tensor::randn_with(&mut g, &[n, n]).to(cfg.device)?;
    let mut mm = || no_grad(|| a.matmul(&b).map(|_| ()));
    let m = cfg.measure(&mut mm, 2.0 * (n as f64).powi(3))?;
    let extra = fields(json!({"shape": [n, n, n]}));
    out.records
        .push(gflops_record(cfg, &format!("matmul_{n}"), m, extra));

    let (nb, c, hw, k) = (32usize, 64usize, 28usize, 3usize);
    let x = Tensor::randn_with(&mut g, &[nb, c, hw, hw]).to(cfg.device)?;
    let w = Tensor::randn_with(&mut g, &[c, c, k, k]).to(cfg.device)?;
    let opts = d2l_tensor::Conv2dOptions::default().with_padding(1);
    let mut conv = || no_grad(|| x.conv2d(&w, None, &opts).map(|_| ()));
    let flops = 2.0 * (nb * c * hw * hw * c * k * k) as f64;
    let m = cfg.measure(&mut conv, flops)?;
    if cfg.profile {
        out.profiles
            .push(("conv2d_64x64_3x3".into(), profile_once(&mut conv)?));
    }
    let extra = fields(json!({
        "input": [nb, c, hw, hw],
        "kernel": [c, c, k, k],
        "padding": 1,
        "bias": false,
    }));
    out.records
        .push(gflops_record(cfg, "conv2d_64x64_3x3", m, extra));
    Ok(())
}
