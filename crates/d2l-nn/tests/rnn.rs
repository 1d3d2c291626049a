//! Recurrent layers against PyTorch fixtures (outputs, final states and the gradients of
//! every input, state and parameter, from `scripts/gen_rnn_fixtures.py`), finite-difference
//! gradient checks of the fused kernels in f64, threading consistency, one-hot and errors.

use d2l_nn::rnn::functional::rnn_sequence;
use d2l_nn::rnn::{
    one_hot, recurrent_layer, Recurrent, RnnMode, RnnOptions, RnnState, GRU, LSTM, RNN,
};
use d2l_nn::Module;
use d2l_tensor::{gradcheck, no_grad, DType, Generator, Result, Tensor};
use d2l_testkit::json::{data, shape};
use serde_json::Value;

const ATOL: f64 = 2e-5;
const RTOL: f64 = 1e-5;

fn tensor(v: &Value) -> Tensor {
    Tensor::from_vec(data(v).into_iter().map(|x| x as f32).collect(), &shape(v)).unwrap()
}

fn assert_close(what: &str, got: &Tensor, want: &Value) {
    assert_eq!(got.shape(), shape(want).as_slice(), "{what}: shape");
    let g = got.to_f64_vec();
    for (k, (a, b)) in g.iter().zip(data(want)).enumerate() {
        assert!(
            (a - b).abs() <= ATOL + RTOL * b.abs(),
            "{what}[{k}]: got {a}, PyTorch {b}"
        );
    }
}

fn fixtures() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rnn.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn mode_of(s: &str) -> RnnMode {
    match s {
        "RNN_TANH" => RnnMode::RnnTanh,
        "RNN_RELU" => RnnMode::RnnRelu,
        "GRU" => RnnMode::Gru,
        "LSTM" => RnnMode::Lstm,
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn layers_match_pytorch_fixtures() -> Result<()> {
    let fx = fixtures();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let mode = mode_of(c["mode"].as_str().unwrap());
        let opts = RnnOptions::default()
            .num_layers(c["num_layers"].as_u64().unwrap() as usize)
            .bidirectional(c["bidirectional"].as_bool().unwrap())
            .batch_first(c["batch_first"].as_bool().unwrap())
            .bias(c["bias"].as_bool().unwrap());
        let layer = recurrent_layer(
            mode,
            c["input_size"].as_u64().unwrap() as usize,
            c["hidden_size"].as_u64().unwrap() as usize,
            opts,
        )?;
        // Same names, same shapes, same order as PyTorch.
        let params = layer.named_parameters();
        let want: Vec<&String> = c["params"].as_object().unwrap().keys().collect();
        let got: Vec<&String> = params.iter().map(|(n, _)| n).collect();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want_sorted, "{name}: parameter names");
        for (n, p) in &params {
            let v = &c["params"][n.as_str()];
            assert_eq!(p.shape(), shape(v).as_slice(), "{name}: {n} shape");
            no_grad(|| p.copy_(&tensor(v)))?;
        }
        let x = tensor(&c["x"]).requires_grad_(true)?;
        let h0 = c
            .get("h0")
            .map(|v| tensor(v).requires_grad_(true))
            .transpose()?;
        let c0 = c
            .get("c0")
            .map(|v| tensor(v).requires_grad_(true))
            .transpose()?;
        let state = h0.as_ref().map(|h| match &c0 {
            Some(cc) => RnnState::Lstm {
                h: h.clone(),
                c: cc.clone(),
            },
            None => RnnState::Hidden(h.clone()),
        });
        let (out, st) = layer.forward_with_state(&x, state.as_ref())?;
        assert_close(&format!("{name}: out"), &out, &c["out"]);
        assert_close(&format!("{name}: h_n"), st.h(), &c["h_n"]);
        let mut loss = out
            .mul(&tensor(&c["w_out"]))?
            .sum_all()?
            .add(&st.h().mul(&tensor(&c["w_h"]))?.sum_all()?)?;
        if let Some(cn) = st.c() {
            assert_close(&format!("{name}: c_n"), cn, &c["c_n"]);
            loss = loss.add(&cn.mul(&tensor(&c["w_c"]))?.sum_all()?)?;
        }
        loss.backward()?;
        let g = &c["grads"];
        assert_close(&format!("{name}: grad x"), &x.grad().unwrap(), &g["x"]);
        if let Some(h) = &h0 {
            assert_close(&format!("{name}: grad h0"), &h.grad().unwrap(), &g["h0"]);
        }
        if let Some(cc) = &c0 {
            assert_close(&format!("{name}: grad c0"), &cc.grad().unwrap(), &g["c0"]);
        }
        for (n, p) in &params {
            let gp = p
                .grad()
                .unwrap_or_else(|| panic!("{name}: no gradient for {n}"));
            assert_close(&format!("{name}: grad {n}"), &gp, &g[n.as_str()]);
        }
    }
    Ok(())
}

fn randn64(g: &mut Generator, shape: &[usize], scale: f64) -> Tensor {
    Tensor::randn_with(g, shape)
        .mul_scalar(scale)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
}

/// Flattens every output of one direction into one tensor for gradcheck.
fn joined(
    mode: RnnMode,
    xs: &[Tensor],
    has_h0: bool,
    has_c0: bool,
    reverse: bool,
) -> Result<Tensor> {
    let mut k = 1;
    let h0 = has_h0.then(|| {
        k += 1;
        &xs[k - 1]
    });
    let c0 = has_c0.then(|| {
        k += 1;
        &xs[k - 1]
    });
    let (w_ih, w_hh) = (&xs[k], &xs[k + 1]);
    let (b_ih, b_hh) = (xs.get(k + 2), xs.get(k + 3));
    let r = rnn_sequence(mode, &xs[0], h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)?;
    let mut parts = vec![r.output.reshape([-1])?, r.h_n.reshape([-1])?];
    if let Some(c) = r.c_n {
        parts.push(c.reshape([-1])?);
    }
    let refs: Vec<&Tensor> = parts.iter().collect();
    Tensor::cat(&refs, 0)
}

#[test]
fn fused_kernels_pass_gradcheck_in_f64() -> Result<()> {
    let mut g = Generator::new(7);
    let (t, b, i, h) = (4, 2, 3, 3);
    for mode in [
        RnnMode::RnnTanh,
        RnnMode::RnnRelu,
        RnnMode::Gru,
        RnnMode::Lstm,
    ] {
        let gh = mode.num_gates() * h;
        for (has_h0, bias, reverse) in [
            (true, true, false),
            (true, true, true),
            (false, false, false),
        ] {
            let has_c0 = has_h0 && mode == RnnMode::Lstm;
            let mut inputs = vec![randn64(&mut g, &[t, b, i], 1.0)];
            if has_h0 {
                inputs.push(randn64(&mut g, &[b, h], 0.5));
            }
            if has_c0 {
                inputs.push(randn64(&mut g, &[b, h], 0.5));
            }
            inputs.push(randn64(&mut g, &[gh, i], 0.5));
            inputs.push(randn64(&mut g, &[gh, h], 0.5));
            if bias {
                inputs.push(randn64(&mut g, &[gh], 0.5));
                inputs.push(randn64(&mut g, &[gh], 0.5));
            }
            gradcheck(|xs| joined(mode, xs, has_h0, has_c0, reverse), &inputs).unwrap_or_else(
                |e| panic!("{mode:?} h0={has_h0} bias={bias} reverse={reverse}: {e}"),
            );
        }
    }
    Ok(())
}

/// A batch big enough to be split over threads gives what each sequence gives alone.
#[test]
fn split_batches_agree_with_single_sequences() -> Result<()> {
    d2l_tensor::manual_seed(3);
    let (t, b, i, h) = (6, 40, 5, 64);
    for mode in [RnnMode::RnnTanh, RnnMode::Gru, RnnMode::Lstm] {
        let layer = recurrent_layer(mode, i, h, RnnOptions::default())?;
        let x = Tensor::randn(&[t, b, i]).requires_grad_(true)?;
        let st = layer.begin_state(b)?;
        let st = match st {
            RnnState::Hidden(z) => RnnState::Hidden(z.add_scalar(0.1)?),
            RnnState::Lstm { h, c } => RnnState::Lstm {
                h: h.add_scalar(0.1)?,
                c: c.add_scalar(-0.2)?,
            },
        };
        let (y, _) = layer.forward_with_state(&x, Some(&st))?;
        y.square()?.sum_all()?.backward()?;
        let gx = x.grad().unwrap();
        layer.zero_grad();
        for r in [0usize, 17, 39] {
            let xr = x
                .detach()
                .narrow(1, r, 1)?
                .contiguous()?
                .requires_grad_(true)?;
            let sr = match &st {
                RnnState::Hidden(z) => RnnState::Hidden(z.narrow(1, r, 1)?),
                RnnState::Lstm { h, c } => RnnState::Lstm {
                    h: h.narrow(1, r, 1)?,
                    c: c.narrow(1, r, 1)?,
                },
            };
            let (yr, _) = layer.forward_with_state(&xr, Some(&sr))?;
            let want = y.narrow(1, r, 1)?.to_f64_vec();
            for (a, b) in yr.to_f64_vec().iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{mode:?} row {r}: {a} vs {b}");
            }
            yr.square()?.sum_all()?.backward()?;
            let want_gx = gx.narrow(1, r, 1)?.to_f64_vec();
            for (a, b) in xr.grad().unwrap().to_f64_vec().iter().zip(&want_gx) {
                assert!((a - b).abs() < 1e-4, "{mode:?} row {r} grad x: {a} vs {b}");
            }
            layer.zero_grad();
        }
    }
    Ok(())
}

#[test]
fn parameters_follow_pytorch_names_shapes_and_init() -> Result<()> {
    d2l_tensor::manual_seed(0);
    let lstm = LSTM::with_options(
        10,
        8,
        RnnOptions::default().num_layers(2).bidirectional(true),
    )?;
    let names: Vec<(String, Vec<usize>)> = lstm
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.shape().to_vec()))
        .collect();
    let expect = |n: &str, s: &[usize]| (n.to_string(), s.to_vec());
    assert_eq!(
        names,
        vec![
            expect("weight_ih_l0", &[32, 10]),
            expect("weight_hh_l0", &[32, 8]),
            expect("bias_ih_l0", &[32]),
            expect("bias_hh_l0", &[32]),
            expect("weight_ih_l0_reverse", &[32, 10]),
            expect("weight_hh_l0_reverse", &[32, 8]),
            expect("bias_ih_l0_reverse", &[32]),
            expect("bias_hh_l0_reverse", &[32]),
            expect("weight_ih_l1", &[32, 16]),
            expect("weight_hh_l1", &[32, 8]),
            expect("bias_ih_l1", &[32]),
            expect("bias_hh_l1", &[32]),
            expect("weight_ih_l1_reverse", &[32, 16]),
            expect("weight_hh_l1_reverse", &[32, 8]),
            expect("bias_ih_l1_reverse", &[32]),
            expect("bias_hh_l1_reverse", &[32]),
        ]
    );
    let bound = 1.0 / 8f64.sqrt();
    for p in lstm.parameters() {
        assert!(p.to_f64_vec().iter().all(|v| v.abs() <= bound));
    }
    // D2L 8.6: nn.RNN(28, 256) + Linear(256, 28) has 80,412 parameters; the RNN 73,216.
    assert_eq!(RNN::new(28, 256)?.num_parameters(), 73_216);
    assert_eq!(GRU::new(28, 256)?.num_parameters(), 3 * 73_216);
    assert_eq!(
        RNN::with_options(28, 256, RnnOptions::default().bias(false))?.num_parameters(),
        28 * 256 + 256 * 256
    );
    assert_eq!(
        lstm.describe(),
        "LSTM(10, 8, num_layers=2, bidirectional=True)"
    );
    assert_eq!(RNN::new(28, 256)?.describe(), "RNN(28, 256)");
    assert_eq!(
        RNN::with_relu(2, 3, RnnOptions::default().batch_first(true))?.describe(),
        "RNN(2, 3, nonlinearity='relu', batch_first=True)"
    );
    Ok(())
}

#[test]
fn shapes_of_outputs_and_states() -> Result<()> {
    let gru = GRU::with_options(
        4,
        6,
        RnnOptions::default()
            .num_layers(3)
            .bidirectional(true)
            .batch_first(true),
    )?;
    let (y, s) = gru.forward_with_state(&Tensor::randn(&[2, 7, 4]), None)?;
    assert_eq!(y.shape(), &[2, 7, 12]);
    assert_eq!(s.h().shape(), &[6, 2, 6]);
    assert!(s.c().is_none());
    assert_eq!(
        gru.forward(&Tensor::randn(&[2, 7, 4]))?.shape(),
        &[2, 7, 12]
    );
    // Unbatched [T, I] with an unbatched state [L·D, H].
    let lstm = LSTM::new(4, 5)?;
    let st = RnnState::Lstm {
        h: Tensor::zeros(&[1, 5]),
        c: Tensor::zeros(&[1, 5]),
    };
    let (y1, s1) = lstm.forward_with_state(&Tensor::randn(&[3, 4]), Some(&st))?;
    assert_eq!(y1.shape(), &[3, 5]);
    assert_eq!(s1.h().shape(), &[1, 5]);
    assert_eq!(s1.c().unwrap().shape(), &[1, 5]);
    // Unbatched equals a batch of one.
    let x = Tensor::randn(&[3, 4]);
    let a = lstm.forward(&x)?;
    let b = lstm.forward(&x.unsqueeze(1)?)?;
    assert_eq!(a.to_f64_vec(), b.to_f64_vec());
    // The final hidden state of a one-layer unidirectional layer is its last output.
    let rnn = RNN::new(4, 5)?;
    let (y, s) = rnn.forward_with_state(&Tensor::randn(&[6, 2, 4]), None)?;
    assert_eq!(
        y.select(0, 5)?.to_f64_vec(),
        s.h().select(0, 0)?.to_f64_vec()
    );
    // Chaining states: two halves equal the whole sequence.
    let x = Tensor::randn(&[6, 2, 4]);
    let uni = GRU::new(4, 5)?;
    let (full, _) = uni.forward_with_state(&x, None)?;
    let (first, s) = uni.forward_with_state(&x.narrow(0, 0, 3)?, None)?;
    let (second, _) = uni.forward_with_state(&x.narrow(0, 3, 3)?, Some(&s.detach()))?;
    let joined = Tensor::cat(&[&first, &second], 0)?;
    for (a, b) in joined.to_f64_vec().iter().zip(full.to_f64_vec()) {
        assert!((a - b).abs() < 1e-6);
    }
    Ok(())
}

#[test]
fn dropout_between_layers_only_in_training() -> Result<()> {
    let rnn = RNN::with_options(3, 8, RnnOptions::default().num_layers(2).dropout(0.5))?;
    let x = Tensor::randn(&[4, 2, 3]);
    rnn.eval();
    let a = rnn.forward(&x)?.to_f64_vec();
    let b = rnn.forward(&x)?.to_f64_vec();
    assert_eq!(a, b);
    rnn.train();
    let c = rnn.forward(&x)?.to_f64_vec();
    assert_ne!(a, c);
    assert!(RNN::with_options(3, 8, RnnOptions::default().dropout(1.0)).is_err());
    Ok(())
}

#[test]
fn one_hot_encodes_ids() -> Result<()> {
    let x = Tensor::from_vec(vec![0i64, 2, 1, 2], &[2, 2])?;
    let y = one_hot(&x, 3)?;
    assert_eq!(y.shape(), &[2, 2, 3]);
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(
        y.to_vec::<f32>(),
        vec![1., 0., 0., 0., 0., 1., 0., 1., 0., 0., 0., 1.]
    );
    let err = one_hot(&Tensor::from_vec(vec![3i64], &[1])?, 3).unwrap_err();
    assert!(err.to_string().contains("index 3"), "{err}");
    assert!(one_hot(&Tensor::zeros(&[2]), 3).is_err());
    Ok(())
}

#[test]
fn bad_inputs_give_clear_errors() -> Result<()> {
    let rnn = RNN::new(4, 5)?;
    let e = rnn
        .forward(&Tensor::zeros(&[2, 3, 4, 1]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rank 3") && e.contains("[2, 3, 4, 1]"), "{e}");
    let e = rnn
        .forward(&Tensor::zeros(&[2, 3, 7]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input_size = 4") && e.contains("[2, 3, 7]"),
        "{e}"
    );
    let bad = RnnState::Hidden(Tensor::zeros(&[1, 2, 5]));
    let e = rnn
        .forward_with_state(&Tensor::zeros(&[2, 3, 4]), Some(&bad))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[1, 3, 5]") && e.contains("[1, 2, 5]"), "{e}");
    let lstm_state = RnnState::Lstm {
        h: Tensor::zeros(&[1, 3, 5]),
        c: Tensor::zeros(&[1, 3, 5]),
    };
    let e = rnn
        .forward_with_state(&Tensor::zeros(&[2, 3, 4]), Some(&lstm_state))
        .unwrap_err()
        .to_string();
    assert!(e.contains("hidden state alone"), "{e}");
    let lstm = LSTM::new(4, 5)?;
    let e = lstm
        .forward_with_state(
            &Tensor::zeros(&[2, 3, 4]),
            Some(&RnnState::Hidden(Tensor::zeros(&[1, 3, 5]))),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("(h, c)"), "{e}");
    let e = rnn
        .forward(&Tensor::zeros_dtype(&[2, 3, 4], DType::F64))
        .unwrap_err()
        .to_string();
    assert!(e.contains("f32") && e.contains("f64"), "{e}");
    assert!(RNN::new(0, 5).is_err());
    assert!(rnn.forward(&Tensor::zeros(&[0, 3, 4])).is_err());
    Ok(())
}
