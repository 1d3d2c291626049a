//! Behaviour of the engine as a D2L reader uses it (chapter 2): creation, dtypes, views,
//! autograd semantics, no_grad, errors, printing.

use d2l_tensor::{
    manual_seed, no_grad, DType, Device, Error, Generator, NoGradGuard, Result, Tensor,
};
use d2l_testkit::t;

#[test]
fn creation_ops() -> Result<()> {
    assert_eq!(Tensor::zeros(&[2, 3]).to_vec::<f32>(), vec![0.0; 6]);
    assert_eq!(Tensor::ones(&[2]).to_vec::<f32>(), vec![1.0; 2]);
    assert_eq!(Tensor::full(&[2], 7.0).to_vec::<f32>(), vec![7.0; 2]);
    assert_eq!(Tensor::arange(0.0, 12.0, 1.0)?.shape(), &[12]);
    assert_eq!(
        Tensor::arange(1.0, 2.0, 0.25)?.to_vec::<f32>(),
        vec![1.0, 1.25, 1.5, 1.75]
    );
    let a = Tensor::arange_dtype(0.0, 5.0, 2.0, DType::I64)?;
    assert_eq!((a.dtype(), a.to_vec::<i64>()), (DType::I64, vec![0, 2, 4]));
    assert_eq!(
        Tensor::linspace(0.0, 1.0, 5)?.to_vec::<f32>(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    assert_eq!(Tensor::eye(2).to_vec::<f32>(), vec![1.0, 0.0, 0.0, 1.0]);
    let k = t(&[1.0, 2.0], &[1, 2]).kron(&t(&[1.0, 10.0], &[2, 1]))?;
    assert_eq!(
        (k.shape(), k.to_vec::<f32>()),
        (&[2usize, 2][..], vec![1.0, 2.0, 10.0, 20.0])
    );
    assert!(Tensor::from_vec(vec![1.0f32; 5], &[2, 3]).is_err());
    assert!(Tensor::arange(0.0, 1.0, 0.0).is_err());
    Ok(())
}

// The only test in this binary that touches the global generator (tests run in parallel).
#[test]
fn seeding_makes_runs_reproducible() -> Result<()> {
    manual_seed(42);
    let a = Tensor::randn(&[8]).to_vec::<f32>();
    let p = Tensor::randperm(10).to_vec::<i64>();
    manual_seed(42);
    assert_eq!(a, Tensor::randn(&[8]).to_vec::<f32>());
    assert_eq!(p, Tensor::randperm(10).to_vec::<i64>());
    let mut g1 = Generator::new(7);
    let mut g2 = Generator::new(7);
    assert_eq!(
        Tensor::rand_with(&mut g1, &[4]).to_vec::<f32>(),
        Tensor::rand_with(&mut g2, &[4]).to_vec::<f32>()
    );
    let mut sorted = p.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<i64>>());
    Ok(())
}

#[test]
fn random_distributions_have_the_right_moments() -> Result<()> {
    let mut g = Generator::new(1);
    // 1e5 samples: the standard error of a mean is ~0.003 for std 1, so 0.02 is > 6 sigma.
    let n = Tensor::normal_with(&mut g, &[100_000], 3.0, 2.0)?;
    assert!((n.mean_all()?.item()? - 3.0).abs() < 0.05);
    assert!((n.std(&[0], true, false)?.item()? - 2.0).abs() < 0.05);
    let u = Tensor::uniform_with(&mut g, &[100_000], -1.0, 3.0)?;
    assert!((u.mean_all()?.item()? - 1.0).abs() < 0.02);
    assert!(u.min_all()?.item()? >= -1.0 && u.max_all()?.item()? < 3.0);
    let b = Tensor::bernoulli_with(&mut g, &[100_000], 0.3)?;
    assert!((b.mean_all()?.item()? - 0.3).abs() < 0.01);
    // D2L 2.6: a fair die, each face near 1/6.
    let fair = Tensor::full(&[6], 1.0 / 6.0);
    let draws = fair.multinomial_with(&mut g, 10_000, true)?;
    let counts = Tensor::zeros_dtype(&[6], DType::I64).scatter_add(
        0,
        &draws,
        &Tensor::ones(&[10_000]).to_dtype(DType::I64)?,
    )?;
    for c in counts.to_vec::<i64>() {
        assert!(
            (c as f64 / 10_000.0 - 1.0 / 6.0).abs() < 0.02,
            "face frequency {c}"
        );
    }
    let without = t(&[0.1, 0.2, 0.3, 0.4], &[4]).multinomial_with(&mut g, 4, false)?;
    let mut s = without.to_vec::<i64>();
    s.sort();
    assert_eq!(s, vec![0, 1, 2, 3]);
    assert!(t(&[0.1, 0.0], &[2])
        .multinomial_with(&mut g, 2, false)
        .is_err());
    assert!(Tensor::bernoulli(&[2], 1.5).is_err());
    Ok(())
}

#[test]
fn dtype_conversion() -> Result<()> {
    let x = t(&[1.7, -2.2, 255.0], &[3]);
    assert_eq!(x.to_dtype(DType::I64)?.to_vec::<i64>(), vec![1, -2, 255]);
    assert_eq!(
        x.to_dtype(DType::F64)?.to_vec::<f64>(),
        vec![1.7f32 as f64, -2.2f32 as f64, 255.0]
    );
    let px = Tensor::from_vec(vec![0u8, 128, 255], &[3])?;
    assert_eq!(
        px.to_dtype(DType::F32)?.div_scalar(255.0)?.to_vec::<f32>()[2],
        1.0
    );
    assert_eq!(px.dtype(), DType::U8);
    Ok(())
}

#[test]
fn views_share_storage_and_copies_do_not() -> Result<()> {
    let x = Tensor::arange(0.0, 12.0, 1.0)?;
    let v = x.reshape([3, -1])?;
    assert_eq!(v.shape(), &[3, 4]);
    assert!(v.shares_storage(&x));
    let p = v.permute(&[1, 0])?;
    assert!(p.shares_storage(&x) && !p.is_contiguous());
    assert_eq!(p.to_vec::<f32>()[..3], [0.0, 4.0, 8.0]);
    let n = v.narrow(1, 1, 2)?;
    assert!(n.shares_storage(&x));
    assert_eq!(n.to_vec::<f32>(), vec![1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
    let b = t(&[1.0, 2.0], &[2, 1]).broadcast_to(&[2, 3])?;
    assert_eq!(b.stride(), &[1, 0]);
    assert_eq!(b.to_vec::<f32>(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    assert!(
        p.view([-1]).is_err(),
        "view of a non-contiguous tensor must fail"
    );
    let c = p.contiguous()?;
    assert!(c.is_contiguous() && !c.shares_storage(&x));
    assert_eq!(p.reshape([-1])?.to_vec::<f32>(), c.to_vec::<f32>());
    assert_eq!(v.unsqueeze(0)?.shape(), &[1, 3, 4]);
    assert_eq!(v.unsqueeze(-1)?.shape(), &[3, 4, 1]);
    assert_eq!(v.unsqueeze(0)?.squeeze_all()?.shape(), &[3, 4]);
    assert_eq!(x.reshape([2, 3, 2])?.flatten(1, -1)?.shape(), &[2, 6]);
    assert_eq!(v.select(0, -1)?.to_vec::<f32>(), vec![8.0, 9.0, 10.0, 11.0]);
    assert_eq!(v.slice(1, -2, 100)?.shape(), &[3, 2]);
    let parts = x.split(5, 0)?;
    assert_eq!(
        parts.iter().map(|p| p.numel()).collect::<Vec<_>>(),
        vec![5, 5, 2]
    );
    assert_eq!(x.chunk(3, 0)?.len(), 3);
    // In-place writes through a view are seen by the base (storage is shared).
    n.fill_(-1.0)?;
    assert_eq!(x.to_vec::<f32>()[1], -1.0);
    Ok(())
}

#[test]
fn matmul_shapes_follow_pytorch() -> Result<()> {
    let a = Tensor::ones(&[2, 3, 4]);
    let b = Tensor::ones(&[4, 5]);
    assert_eq!(a.matmul(&b)?.shape(), &[2, 3, 5]);
    assert_eq!(Tensor::ones(&[4]).matmul(&b)?.shape(), &[5]);
    assert_eq!(b.t()?.matmul(&Tensor::ones(&[4]))?.shape(), &[5]);
    assert_eq!(Tensor::ones(&[4]).matmul(&Tensor::ones(&[4]))?.item()?, 4.0);
    assert_eq!(
        Tensor::ones(&[7, 1, 3, 4])
            .matmul(&Tensor::ones(&[2, 4, 6]))?
            .shape(),
        &[7, 2, 3, 6]
    );
    // A transposed view goes to GEMM without a copy and gives the right numbers.
    let m = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(
        m.t()?.matmul(&m)?.to_vec::<f32>(),
        vec![17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]
    );
    let big = Tensor::randn_with(&mut Generator::new(3), &[130, 70]);
    let prod = big.matmul(&big.t()?)?;
    let naive: f32 = (0..70)
        .map(|k| big.to_vec::<f32>()[k] * big.to_vec::<f32>()[70 + k])
        .sum();
    assert!((prod.to_vec::<f32>()[1] - naive).abs() < 1e-3);
    Ok(())
}

#[test]
fn softmax_is_stable_at_large_logits() -> Result<()> {
    let x = t(&[1000.0, 0.0, -1000.0, -1000.0, -1000.0, -1000.0], &[2, 3]);
    let s = x.softmax(-1)?.to_vec::<f32>();
    assert!(s.iter().all(|v| v.is_finite()));
    assert_eq!(&s[..3], &[1.0, 0.0, 0.0]);
    assert!((s[3] - 1.0 / 3.0).abs() < 1e-6);
    let l = x.log_softmax(1)?.to_vec::<f32>();
    assert_eq!(l[0], 0.0);
    assert!((l[1] + 1000.0).abs() < 1e-3 && (l[2] + 2000.0).abs() < 1e-2);
    let lse = x.logsumexp(&[1], false)?.to_vec::<f32>();
    assert!((lse[0] - 1000.0).abs() < 1e-3 && (lse[1] - (-1000.0 + 3f32.ln())).abs() < 1e-3);
    Ok(())
}

#[test]
fn reductions() -> Result<()> {
    let x = Tensor::arange(0.0, 6.0, 1.0)?.reshape([2, 3])?;
    assert_eq!(x.sum(&[0], false)?.to_vec::<f32>(), vec![3.0, 5.0, 7.0]);
    assert_eq!(x.sum(&[-1], true)?.shape(), &[2, 1]);
    assert_eq!(x.mean_all()?.item()?, 2.5);
    let (v, i) = x.max_dim(1, false)?;
    assert_eq!(
        (v.to_vec::<f32>(), i.to_vec::<i64>()),
        (vec![2.0, 5.0], vec![2, 2])
    );
    assert_eq!(x.argmin(0, false)?.to_vec::<i64>(), vec![0, 0, 0]);
    assert_eq!(x.var(&[1], true, false)?.to_vec::<f32>(), vec![1.0, 1.0]);
    assert_eq!(t(&[3.0, 4.0], &[2]).norm(2.0)?.item()?, 5.0);
    // A long sum keeps its precision (blocks are added in f64).
    let big = Tensor::ones(&[4096, 4096]);
    assert_eq!(big.sum_all()?.item()?, 16_777_216.0);
    assert_eq!(big.sum(&[0], false)?.to_vec::<f32>()[17], 4096.0);
    let ints = Tensor::from_vec(vec![1i64, 2, 3], &[3])?;
    assert_eq!(ints.sum_all()?.to_vec::<i64>(), vec![6]);
    Ok(())
}

#[test]
fn autograd_basics_of_d2l_2_5() -> Result<()> {
    // y = 2 xᵀx, dy/dx = 4x.
    let x = Tensor::arange(0.0, 4.0, 1.0)?.requires_grad_(true)?;
    let y = x.matmul(&x)?.mul_scalar(2.0)?;
    y.backward()?;
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![0.0, 4.0, 8.0, 12.0]);
    // Gradients accumulate across backward calls until zeroed.
    x.sum_all()?.backward()?;
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![1.0, 5.0, 9.0, 13.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
    // Non-scalar output: backward with a gradient (the book's y.sum()).
    let y = x.mul(&x)?;
    assert!(matches!(y.backward(), Err(Error::Autograd(_))));
    y.backward_with(&Tensor::ones(&[4]))?;
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![0.0, 2.0, 4.0, 6.0]);
    // Detaching: u is treated as a constant.
    x.zero_grad();
    let y = x.mul(&x)?;
    let u = y.detach();
    let z = u.mul(&x)?;
    z.sum_all()?.backward()?;
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), u.to_vec::<f32>());
    // Repeated use of one tensor sums both paths: d(x·x + x)/dx = 2x + 1.
    let w = t(&[1.0, -2.0], &[2]).requires_grad_(true)?;
    let out = (&w * &w)?.add(&w)?.sum_all()?;
    out.backward()?;
    assert_eq!(w.grad().unwrap().to_vec::<f32>(), vec![3.0, -3.0]);
    Ok(())
}

#[test]
fn control_flow_gradient_of_d2l_2_5_4() -> Result<()> {
    fn f(a: &Tensor) -> Result<Tensor> {
        let mut b = a.mul_scalar(2.0)?;
        while b.norm(2.0)?.item()? < 1000.0 {
            b = b.mul_scalar(2.0)?;
        }
        if b.sum_all()?.item()? > 0.0 {
            Ok(b)
        } else {
            b.mul_scalar(100.0)
        }
    }
    let a = Tensor::randn_with(&mut Generator::new(4), &[]).requires_grad_(true)?;
    let d = f(&a)?;
    d.backward()?;
    let ratio = d.div(&a)?.item()?;
    assert!((a.grad().unwrap().item()? - ratio).abs() <= 1e-3 * ratio.abs());
    Ok(())
}

#[test]
fn no_grad_records_nothing() -> Result<()> {
    let w = Tensor::randn_with(&mut Generator::new(5), &[3, 3]).requires_grad_(true)?;
    let y = no_grad(|| w.matmul(&w)?.relu()?.sum_all())?;
    assert!(!y.requires_grad() && !y.has_graph());
    assert!(y.backward().is_err());
    {
        let _g = NoGradGuard::new();
        let z = w.exp()?;
        assert!(!z.requires_grad());
    }
    assert!(
        w.exp()?.requires_grad(),
        "recording resumes after the guard"
    );
    // In-place on a leaf that requires grad is refused unless under no_grad.
    assert!(w.sub_(&Tensor::ones(&[3, 3])).is_err());
    no_grad(|| w.sub_(&Tensor::ones(&[3, 3])))?;
    Ok(())
}

#[test]
fn backward_frees_the_graph() -> Result<()> {
    let x = Tensor::randn_with(&mut Generator::new(6), &[4]).requires_grad_(true)?;
    let h = x.exp()?;
    let y = h.sin()?.sum_all()?;
    assert!(y.has_graph() && h.has_graph());
    y.backward()?;
    assert!(
        !y.has_graph() && !h.has_graph(),
        "saved tensors are released by backward"
    );
    let again = y.backward();
    assert!(
        matches!(again, Err(Error::Autograd(ref m)) if m.contains("second time")),
        "{again:?}"
    );
    // retain_graph keeps it for a second pass.
    let y = x.exp()?.sum_all()?;
    y.backward_opts(&Tensor::scalar(1.0), true)?;
    y.backward_opts(&Tensor::scalar(1.0), false)?;
    Ok(())
}

#[test]
fn d2l_from_scratch_sgd_reads_naturally() -> Result<()> {
    // One step of `w -= lr * w.grad / batch_size` under no_grad, then zeroing.
    let w = t(&[1.0, 2.0], &[2, 1]).requires_grad_(true)?;
    let x = t(&[1.0, 1.0, 2.0, 0.0], &[2, 2]);
    let loss = x.matmul(&w)?.square()?.mul_scalar(0.5)?.sum_all()?;
    loss.backward()?;
    no_grad(|| -> Result<()> {
        w.sub_(&(&w.grad().unwrap() * (0.1 / 2.0))?)?;
        Ok(())
    })?;
    w.zero_grad();
    // grad = Xᵀ(Xw) = [[1,2],[1,0]]·[3,2] = [7, 3].
    let got = w.to_vec::<f32>();
    assert!(
        (got[0] - (1.0 - 0.05 * 7.0)).abs() < 1e-6 && (got[1] - (2.0 - 0.05 * 3.0)).abs() < 1e-6
    );
    assert!(w.is_leaf() && w.requires_grad());
    Ok(())
}

#[test]
fn errors_name_the_op_and_the_shapes() {
    let a = Tensor::ones(&[256, 784]);
    let b = Tensor::ones(&[256, 10]);
    let e = a.matmul(&b).unwrap_err().to_string();
    assert!(
        e.contains("matmul")
            && e.contains("[256, 784]")
            && e.contains("[256, 10]")
            && e.contains("784"),
        "{e}"
    );
    let e = Tensor::ones(&[2, 3])
        .add(&Tensor::ones(&[4]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("add:") && e.contains("[2, 3]") && e.contains("[4]"),
        "{e}"
    );
    let e = Tensor::ones(&[2, 3]).sum(&[2], false).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimOutOfRange {
                dim: 2,
                rank: 2,
                ..
            }
        ),
        "{e}"
    );
    let idx = Tensor::from_vec(vec![0i64, 5], &[2]).unwrap();
    let e = Tensor::ones(&[3, 2]).index_select(0, &idx).unwrap_err();
    assert!(
        matches!(
            e,
            Error::IndexOutOfRange {
                index: 5,
                size: 3,
                ..
            }
        ),
        "{e}"
    );
    let e = Tensor::ones(&[3])
        .index_select(0, &Tensor::ones(&[1]))
        .unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    let ints = Tensor::from_vec(vec![1i64, 2], &[2]).unwrap();
    assert!(matches!(
        ints.exp().unwrap_err(),
        Error::DTypeMismatch { .. }
    ));
    assert!(matches!(
        ints.add(&Tensor::ones(&[2])).unwrap_err(),
        Error::DTypeMismatch { .. }
    ));
    assert!(ints.clone().requires_grad_(true).is_err());
    assert!(Tensor::ones(&[2, 3]).reshape([4, -1]).is_err());
    assert!(Tensor::ones(&[2, 3]).reshape([-1, -1]).is_err());
    assert!(Tensor::ones(&[2, 3]).permute(&[0, 0]).is_err());
    assert!(Tensor::ones(&[2, 3]).narrow(1, 2, 2).is_err());
    assert!(Tensor::ones(&[2]).item().is_err());
    assert!(Tensor::cat(&[], 0).is_err());
    assert!(Tensor::cat(&[&Tensor::ones(&[2, 3]), &Tensor::ones(&[2, 4])], 0).is_err());
}

#[test]
fn device_is_cpu_and_mixing_is_checked_by_name() {
    let a = Tensor::ones(&[2]);
    assert_eq!(a.device(), Device::Cpu);
    let msg = Error::DeviceMismatch {
        op: "add",
        lhs: Device::Cpu,
        rhs: Device::Cpu,
    }
    .to_string();
    assert!(msg.contains("add") && msg.contains("cpu"));
}

#[test]
fn printing_like_pytorch() -> Result<()> {
    let x = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    assert_eq!(
        x.to_string(),
        "tensor([[1., 2.],\n        [3., 4.]], shape=[2, 2])"
    );
    let y = t(&[0.5, -1.25], &[2]);
    assert_eq!(y.to_string(), "tensor([ 0.5000, -1.2500], shape=[2])");
    let i = Tensor::from_vec(vec![1i64, 20], &[2])?;
    assert_eq!(i.to_string(), "tensor([ 1, 20], dtype=i64, shape=[2])");
    let big = Tensor::zeros(&[100, 100]).to_string();
    assert!(
        big.contains("...") && big.len() < 600,
        "large tensors are summarised"
    );
    let d = format!("{:?}", x.clone().requires_grad_(true)?);
    assert!(
        d.contains("shape: [2, 2]")
            && d.contains("dtype: f32")
            && d.contains("device: cpu")
            && d.contains("requires_grad: true")
    );
    Ok(())
}

#[test]
fn operators() -> Result<()> {
    let a = t(&[1.0, 2.0], &[2]);
    let b = t(&[3.0, 4.0], &[2]);
    assert_eq!((&a + &b)?.to_vec::<f32>(), vec![4.0, 6.0]);
    assert_eq!((&a - &b)?.to_vec::<f32>(), vec![-2.0, -2.0]);
    assert_eq!((&a * 2.0)?.to_vec::<f32>(), vec![2.0, 4.0]);
    assert_eq!((2.0 / &a)?.to_vec::<f32>(), vec![2.0, 1.0]);
    assert_eq!((1.0 - &a)?.to_vec::<f32>(), vec![0.0, -1.0]);
    assert_eq!((-&a)?.to_vec::<f32>(), vec![-1.0, -2.0]);
    assert_eq!(a.lt(&b)?.to_vec::<u8>(), vec![1, 1]);
    assert_eq!(a.eq_scalar(2.0)?.to_vec::<u8>(), vec![0, 1]);
    Ok(())
}

#[test]
fn threads_can_be_set() -> Result<()> {
    d2l_tensor::set_num_threads(2)?;
    assert_eq!(d2l_tensor::num_threads(), 2);
    assert!(d2l_tensor::set_num_threads(0).is_err());
    // Big enough to take the parallel paths.
    let x = Tensor::ones(&[300, 300]);
    assert_eq!(x.matmul(&x)?.to_vec::<f32>()[0], 300.0);
    assert_eq!(x.add(&x)?.sum_all()?.item()?, 180_000.0);
    Ok(())
}

#[test]
fn add_scaled_in_place_fast_and_general_paths() -> Result<()> {
    // Fast path: contiguous, same shape and dtype.
    let p = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    let g = Tensor::from_vec(vec![10.0f32, 20.0, 30.0, 40.0], &[2, 2])?;
    p.add_scaled_(&g, -0.1)?;
    assert_eq!(p.to_vec::<f32>(), vec![0.0, 0.0, 0.0, 0.0]);
    // A large one is split over the pool's threads (f32 and f64, an odd length, a
    // destination that is a view at an offset): every element as the definition.
    let n = 100_003;
    let mut rng = Generator::new(9);
    for dtype in [DType::F32, DType::F64] {
        let base = Tensor::randn_with(&mut rng, &[n + 3]).to_dtype(dtype)?;
        let p = base.narrow(0, 3, n)?;
        let g = Tensor::randn_with(&mut rng, &[n]).to_dtype(dtype)?;
        let (pv, gv) = (p.to_f64_vec(), g.to_f64_vec());
        p.add_scaled_(&g, -0.25)?;
        let got = p.to_f64_vec();
        for i in 0..n {
            let want = if dtype == DType::F32 {
                (pv[i] as f32 + -0.25f32 * gv[i] as f32) as f64
            } else {
                pv[i] + -0.25 * gv[i]
            };
            assert_eq!(got[i], want, "{dtype:?} [{i}]");
        }
    }
    // A strided destination and a broadcast source take the general path.
    let q = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2])?;
    let qt = q.t()?;
    qt.add_scaled_(&Tensor::from_vec(vec![1.0f64, 2.0], &[2])?, 2.0)?;
    assert_eq!(q.to_vec::<f64>(), vec![3.0, 4.0, 7.0, 8.0]);
    // Aliasing source and destination.
    q.add_scaled_(&q, 1.0)?;
    assert_eq!(q.to_vec::<f64>(), vec![6.0, 8.0, 14.0, 16.0]);
    // Shape and dtype errors are reported, not panics.
    assert!(p.add_scaled_(&Tensor::ones(&[3]), 1.0).is_err());
    // Integer tensors take the general path (BatchNorm's `num_batches_tracked += 1`).
    let ints = Tensor::from_vec(vec![1i64, 2], &[2])?;
    ints.add_(&ints.copy()?)?;
    assert_eq!(ints.to_vec::<i64>(), vec![2, 4]);
    Ok(())
}

#[test]
fn sums_over_nothing_are_zero_with_the_kept_shape() {
    let x = Tensor::zeros(&[0, 3]);
    let s = x.sum_all().unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s.add_scalar(1.0).unwrap().to_vec::<f32>(), vec![1.0]);
    let rows = Tensor::zeros(&[2, 0]).sum(&[1], false).unwrap();
    assert_eq!(rows.to_vec::<f32>(), vec![0.0, 0.0]);
    let cols = x.sum(&[0], false).unwrap();
    assert_eq!(cols.to_vec::<f32>(), vec![0.0, 0.0, 0.0]);
}
