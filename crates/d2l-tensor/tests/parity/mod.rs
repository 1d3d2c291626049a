//! The device parity suite: every op, forward and backward, on the CPU and on a device
//! from the same inputs. Shared by `device_sim.rs` (the simulated device, run everywhere)
//! and `cuda_parity.rs` (a real GPU, run on the GPU machine).

use d2l_tensor::{
    Conv2dOptions, ConvTranspose2dOptions, DType, Device, Generator, PadMode, Pool2dOptions,
    Result, Tensor,
};

/// How close device results must be to the CPU's.
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    pub rel: f64,
    pub abs: f64,
}

type OpFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

/// One case: a name, CPU inputs (float ones get gradients), and the op.
pub struct Case {
    pub name: &'static str,
    pub inputs: Vec<Tensor>,
    pub f: OpFn,
    /// Extra slack for ops that sum many products (matmul, conv) on a real GPU.
    pub slack: f64,
}

fn rnd(g: &mut Generator, shape: &[usize]) -> Tensor {
    Tensor::randn_with(g, shape)
}

fn pos(g: &mut Generator, shape: &[usize]) -> Tensor {
    Tensor::uniform_with(g, shape, 0.5, 2.0).unwrap()
}

fn case(
    name: &'static str,
    inputs: Vec<Tensor>,
    f: impl Fn(&[Tensor]) -> Result<Tensor> + 'static,
) -> Case {
    Case {
        name,
        inputs,
        f: Box::new(f),
        slack: 1.0,
    }
}

fn slack(mut c: Case, s: f64) -> Case {
    c.slack = s;
    c
}

/// Every case of the suite.
pub fn cases() -> Vec<Case> {
    let mut g = Generator::new(7);
    let g = &mut g;
    let mut v: Vec<Case> = Vec::new();
    // Elementwise, unary.
    let x = rnd(g, &[3, 5]);
    let p = pos(g, &[3, 5]);
    v.push(case("neg", vec![x.clone()], |t| t[0].neg()));
    v.push(case("abs", vec![x.clone()], |t| t[0].abs()));
    v.push(case("exp", vec![x.clone()], |t| t[0].exp()));
    v.push(case("log", vec![p.clone()], |t| t[0].log()));
    v.push(case("sqrt", vec![p.clone()], |t| t[0].sqrt()));
    v.push(case("tanh", vec![x.clone()], |t| t[0].tanh()));
    v.push(case("sigmoid", vec![x.clone()], |t| t[0].sigmoid()));
    v.push(case("relu", vec![x.clone()], |t| t[0].relu()));
    v.push(case("gelu", vec![x.clone()], |t| t[0].gelu()));
    v.push(case("softplus", vec![x.clone()], |t| t[0].softplus()));
    v.push(case("sin_cos", vec![x.clone()], |t| {
        t[0].sin()?.add(&t[0].cos()?)
    }));
    v.push(case("leaky_relu", vec![x.clone()], |t| {
        t[0].leaky_relu(0.1)
    }));
    v.push(case("clamp", vec![x.clone()], |t| t[0].clamp(-0.5, 0.5)));
    v.push(case("pow_scalar", vec![p.clone()], |t| {
        t[0].pow_scalar(1.5)
    }));
    v.push(case("scalar_arith", vec![x.clone()], |t| {
        t[0].add_scalar(1.5)?
            .mul_scalar(-2.0)?
            .sub_scalar(0.25)?
            .div_scalar(3.0)
    }));
    // Elementwise, binary with broadcasting.
    let row = rnd(g, &[1, 5]);
    let col = pos(g, &[3, 1]);
    v.push(case("add_bcast", vec![x.clone(), row.clone()], |t| {
        t[0].add(&t[1])
    }));
    v.push(case("sub_bcast", vec![x.clone(), col.clone()], |t| {
        t[0].sub(&t[1])
    }));
    v.push(case("mul_bcast", vec![x.clone(), row.clone()], |t| {
        t[0].mul(&t[1])
    }));
    v.push(case("div_bcast", vec![x.clone(), col.clone()], |t| {
        t[0].div(&t[1])
    }));
    v.push(case("pow", vec![p.clone(), row.clone()], |t| {
        t[0].pow(&t[1])
    }));
    v.push(case("maximum", vec![x.clone(), row.clone()], |t| {
        t[0].maximum(&t[1])
    }));
    v.push(case("minimum", vec![x.clone(), row.clone()], |t| {
        t[0].minimum(&t[1])
    }));
    v.push(case("where_gt", vec![x.clone(), row.clone()], |t| {
        let m = t[0].gt(&t[1])?;
        Tensor::where_cond(&m, &t[0], &t[1])
    }));
    v.push(case("masked_fill", vec![x.clone()], |t| {
        let m = t[0].gt_scalar(0.3)?;
        t[0].masked_fill(&m, -1.0)
    }));
    v.push(case("compare_u8", vec![x.clone(), row.clone()], |t| {
        t[0].lt(&t[1])?.to_dtype(DType::F32)
    }));
    v.push(case("to_dtype_f64", vec![x.clone()], |t| {
        t[0].to_dtype(DType::F64)?.exp()?.to_dtype(DType::F32)
    }));
    // Reductions.
    let cube = rnd(g, &[2, 3, 4]);
    v.push(case("sum_all", vec![cube.clone()], |t| t[0].sum_all()));
    v.push(case("sum_dims", vec![cube.clone()], |t| {
        t[0].sum(&[0, 2], true)
    }));
    v.push(case("mean", vec![cube.clone()], |t| t[0].mean(&[1], false)));
    v.push(case("var", vec![cube.clone()], |t| {
        t[0].var(&[2], true, false)
    }));
    v.push(case("max_dim", vec![cube.clone()], |t| {
        Ok(t[0].max_dim(1, false)?.0)
    }));
    v.push(case("min_dim", vec![cube.clone()], |t| {
        Ok(t[0].min_dim(2, true)?.0)
    }));
    v.push(case("argmax", vec![cube.clone()], |t| {
        t[0].argmax(2, false)?.to_dtype(DType::F32)
    }));
    v.push(case("logsumexp", vec![cube.clone()], |t| {
        t[0].logsumexp(&[-1], false)
    }));
    v.push(case("softmax", vec![cube.clone()], |t| t[0].softmax(-1)));
    v.push(case("log_softmax", vec![cube.clone()], |t| {
        t[0].log_softmax(1)
    }));
    v.push(case("norm", vec![cube.clone()], |t| t[0].norm(2.0)));
    // Linear algebra.
    let a = rnd(g, &[4, 6]);
    let b = rnd(g, &[6, 3]);
    v.push(slack(
        case("matmul", vec![a.clone(), b.clone()], |t| t[0].matmul(&t[1])),
        10.0,
    ));
    v.push(slack(
        case("matmul_t", vec![a.clone(), a.clone()], |t| {
            t[0].matmul(&t[1].t()?)
        }),
        10.0,
    ));
    let ba = rnd(g, &[2, 4, 6]);
    let bb = rnd(g, &[2, 6, 5]);
    v.push(slack(
        case("bmm", vec![ba, bb], |t| t[0].matmul(&t[1])),
        10.0,
    ));
    v.push(slack(
        case("matvec", vec![a.clone(), rnd(g, &[6])], |t| {
            t[0].matmul(&t[1])
        }),
        10.0,
    ));
    // Movement and indexing.
    v.push(case("reshape_permute", vec![cube.clone()], |t| {
        t[0].permute(&[2, 0, 1])?.reshape(&[4, 6])?.contiguous()
    }));
    v.push(case("transpose_strided", vec![cube.clone()], |t| {
        t[0].transpose(0, 2)?.mul_scalar(2.0)
    }));
    v.push(case("narrow_slice", vec![cube.clone()], |t| {
        t[0].narrow(2, 1, 2)?.slice(1, 0, 2)?.exp()
    }));
    v.push(case("cat", vec![x.clone(), row.clone()], |t| {
        Tensor::cat(&[&t[0], &t[1]], 0)
    }));
    v.push(case(
        "stack",
        vec![x.clone(), x.mul_scalar(0.5).unwrap()],
        |t| Tensor::stack(&[&t[0], &t[1]], 1),
    ));
    v.push(case("broadcast_expand", vec![row.clone()], |t| {
        t[0].broadcast_to(&[4, 5])?.contiguous()
    }));
    v.push(case("pad", vec![x.clone()], |t| {
        t[0].pad(&[1, 2, 0, 1], 0.5)
    }));
    v.push(case("repeat", vec![row.clone()], |t| t[0].repeat(&[2, 2])));
    v.push(case("index_select", vec![x.clone()], |t| {
        let i = Tensor::from_vec(vec![2i64, 0, 2], &[3])?.to(t[0].device())?;
        t[0].index_select(0, &i)
    }));
    v.push(case("gather", vec![x.clone()], |t| {
        let i = Tensor::from_vec(vec![4i64, 0, 1, 1, 3, 2], &[3, 2])?.to(t[0].device())?;
        t[0].gather(1, &i)
    }));
    v.push(case("scatter_add", vec![x.clone(), rnd(g, &[3, 2])], |t| {
        let i = Tensor::from_vec(vec![4i64, 0, 1, 1, 3, 3], &[3, 2])?.to(t[0].device())?;
        t[0].scatter_add(1, &i, &t[1])
    }));
    // Convolution, pooling, normalisation, resampling.
    let img = rnd(g, &[2, 3, 9, 9]);
    let w = rnd(g, &[4, 3, 3, 3]);
    let bias = rnd(g, &[4]);
    v.push(slack(
        case("conv2d", vec![img.clone(), w.clone(), bias.clone()], |t| {
            t[0].conv2d(
                &t[1],
                Some(&t[2]),
                &Conv2dOptions::stride(1).with_padding(1),
            )
        }),
        10.0,
    ));
    v.push(slack(
        case(
            "conv2d_stride_groups",
            vec![rnd(g, &[2, 4, 8, 8]), rnd(g, &[6, 2, 3, 3])],
            |t| t[0].conv2d(&t[1], None, &Conv2dOptions::stride(2).with_groups(2)),
        ),
        10.0,
    ));
    v.push(slack(
        case(
            "conv_transpose2d",
            vec![rnd(g, &[1, 3, 5, 5]), rnd(g, &[3, 2, 4, 4])],
            |t| {
                t[0].conv_transpose2d(
                    &t[1],
                    None,
                    &ConvTranspose2dOptions::stride(2).with_padding(1),
                )
            },
        ),
        10.0,
    ));
    v.push(case("max_pool2d", vec![img.clone()], |t| {
        t[0].max_pool2d(&Pool2dOptions::new(3).with_stride(2).with_padding(1))
    }));
    v.push(case("avg_pool2d", vec![img.clone()], |t| {
        t[0].avg_pool2d(&Pool2dOptions::new(2))
    }));
    v.push(case("adaptive_avg_pool2d", vec![img.clone()], |t| {
        t[0].adaptive_avg_pool2d((1, 1))
    }));
    v.push(case(
        "batch_norm_train",
        vec![img.clone(), pos(g, &[3]), rnd(g, &[3])],
        |t| t[0].batch_norm(None, None, Some(&t[1]), Some(&t[2]), true, 0.1, 1e-5),
    ));
    v.push(case("batch_norm_running", vec![img.clone()], |t| {
        let rm = Tensor::zeros(&[3]).to(t[0].device())?;
        let rv = Tensor::ones(&[3]).to(t[0].device())?;
        let y = t[0].batch_norm(Some(&rm), Some(&rv), None, None, true, 0.1, 1e-5)?;
        // The running statistics were updated in place on the device.
        let z = t[0].batch_norm(Some(&rm), Some(&rv), None, None, false, 0.1, 1e-5)?;
        y.add(&z)
    }));
    v.push(case(
        "group_norm",
        vec![rnd(g, &[2, 4, 3, 3]), pos(g, &[4]), rnd(g, &[4])],
        |t| t[0].group_norm(2, Some(&t[1]), Some(&t[2]), 1e-5),
    ));
    v.push(case(
        "upsample_bilinear",
        vec![rnd(g, &[1, 2, 4, 5])],
        |t| t[0].upsample_bilinear2d((7, 9), false),
    ));
    v.push(case("upsample_nearest", vec![rnd(g, &[1, 2, 4, 5])], |t| {
        t[0].upsample_nearest2d((8, 10))
    }));
    v.push(case("pad2d_reflect", vec![rnd(g, &[1, 2, 4, 5])], |t| {
        t[0].pad2d((1, 2, 2, 1), PadMode::Reflect)
    }));
    // In-place updates (the optimiser's path) and moves.
    v.push(case("add_scaled_", vec![x.clone(), row.clone()], |t| {
        let dst = d2l_tensor::no_grad(|| t[0].mul_scalar(1.0))?;
        d2l_tensor::no_grad(|| dst.add_scaled_(&t[1].broadcast_to(&[3, 5])?, -0.5))?;
        t[0].mul(&dst)
    }));
    v.push(case("copy_from_cpu", vec![x.clone()], |t| {
        let dst = d2l_tensor::no_grad(|| t[0].mul_scalar(0.0))?;
        let host = Tensor::arange(0.0, 15.0, 1.0)?.reshape(&[3, 5])?;
        dst.copy_(&host)?;
        t[0].add(&dst)
    }));
    v.push(case("to_cpu_and_back", vec![x.clone()], |t| {
        let dev = t[0].device();
        t[0].exp()?.cpu()?.mul_scalar(2.0)?.to(dev)?.log()
    }));
    v
}

fn close(
    name: &str,
    what: &str,
    cpu: &Tensor,
    dev: &Tensor,
    tol: Tol,
) -> std::result::Result<(), String> {
    if cpu.shape() != dev.shape() {
        return Err(format!(
            "{name}: {what} shape {:?} on cpu, {:?} on device",
            cpu.shape(),
            dev.shape()
        ));
    }
    let (a, b) = (cpu.to_f64_vec(), dev.to_f64_vec());
    let mut worst = (0.0f64, 0usize);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x.is_nan() && y.is_nan() {
            continue;
        }
        let err = (x - y).abs();
        let allowed = tol.abs + tol.rel * x.abs().max(y.abs());
        if !(err <= allowed) {
            return Err(format!(
                "{name}: {what}[{i}] = {x} on cpu, {y} on device (|diff| {err:.3e} > {allowed:.3e})"
            ));
        }
        if err > worst.0 {
            worst = (err, i);
        }
    }
    Ok(())
}

/// Runs one case on the CPU and on `device`; `Err` describes the first disagreement.
pub fn check(c: &Case, device: Device, tol: Tol) -> std::result::Result<(), String> {
    let tol = Tol {
        rel: tol.rel * c.slack,
        abs: tol.abs * c.slack,
    };
    let leaves = |on: Device| -> Result<Vec<Tensor>> {
        c.inputs
            .iter()
            .map(|t| {
                let m = t.to(on)?.detach();
                if m.dtype().is_float() {
                    m.requires_grad_(true)
                } else {
                    Ok(m)
                }
            })
            .collect()
    };
    let run = |on: Device| -> Result<(Tensor, Vec<Option<Tensor>>)> {
        let xs = leaves(on)?;
        let y = (c.f)(&xs)?;
        if y.requires_grad() {
            // A fixed, non-uniform weighting so every output element's gradient differs.
            let n = y.numel();
            let w: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.4)
                .collect();
            let w = Tensor::from_vec(w, y.shape())?
                .to_dtype(y.dtype())?
                .to(on)?;
            y.mul(&w)?.sum_all()?.backward()?;
        }
        Ok((y, xs.iter().map(|t| t.grad()).collect()))
    };
    let (yc, gc) = run(Device::Cpu).map_err(|e| format!("{}: on cpu: {e}", c.name))?;
    let (yd, gd) = run(device).map_err(|e| format!("{}: on {device}: {e}", c.name))?;
    if yd.device() != device {
        return Err(format!(
            "{}: output on {}, expected {device}",
            c.name,
            yd.device()
        ));
    }
    close(c.name, "output", &yc, &yd, tol)?;
    for (i, (a, b)) in gc.iter().zip(&gd).enumerate() {
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                if b.device() != device {
                    return Err(format!(
                        "{}: grad of input {i} on {}, expected {device}",
                        c.name,
                        b.device()
                    ));
                }
                close(c.name, &format!("grad of input {i}"), a, b, tol)?
            }
            _ => {
                return Err(format!(
                    "{}: grad of input {i} is {} on cpu and {} on device",
                    c.name,
                    if a.is_some() { "present" } else { "absent" },
                    if b.is_some() { "present" } else { "absent" }
                ))
            }
        }
    }
    Ok(())
}

/// Runs every case; prints one line per case and panics listing all failures.
pub fn run_all(device: Device, tol: Tol) {
    let cases = cases();
    let mut failures = Vec::new();
    for c in &cases {
        match check(c, device, tol) {
            Ok(()) => println!("parity ok   {}", c.name),
            Err(e) => {
                println!("parity FAIL {e}");
                failures.push(e);
            }
        }
    }
    println!(
        "parity: {} of {} cases agree on {device}",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} parity failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
