//! D2L 13.12 style-transfer losses against PyTorch, gradient checks, the book-vs-stated
//! total, feature extraction, pre/postprocessing, bad inputs and a tiny optimisation.
//!
//! `tests/fixtures/style/losses.txt` is written by `scripts/gen_style_fixtures.py` (the
//! book's code run with torch in float64 on float32 inputs).

use d2l_tensor::{gradcheck, no_grad, Conv2dOptions, DType, Generator, Result, Tensor};
use d2l_vision::style::{
    compute_loss, content_layers, content_loss, extract_features, gram, postprocess, preprocess,
    select_features, style_layers, style_loss, tv_loss, StyleWeights, RGB_MEAN, RGB_STD,
};
use std::collections::HashMap;

const FIXTURES: &str = include_str!("fixtures/style/losses.txt");
const TOL: f64 = 1e-5;

/// One layer of a feature extractor.
type Layer = Box<dyn Fn(&Tensor) -> Result<Tensor>>;

/// The fixture's tensors by name, as f64 tensors.
fn fixtures() -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    for line in FIXTURES.lines().filter(|l| !l.starts_with('#')) {
        let mut it = line.split_whitespace();
        let name = it.next().expect("fixture: name").to_string();
        let shape: Vec<usize> = match it.next().expect("fixture: shape") {
            "-" => vec![],
            s => s.split(',').map(|d| d.parse().unwrap()).collect(),
        };
        let vals: Vec<f64> = it.map(|v| v.parse().unwrap()).collect();
        out.insert(name, Tensor::from_vec(vals, &shape).unwrap());
    }
    out
}

fn get(f: &HashMap<String, Tensor>, name: &str) -> Tensor {
    f.get(name)
        .unwrap_or_else(|| panic!("fixture: no tensor {name}"))
        .clone()
}

/// A fresh f64 leaf that requires grad.
fn leaf(t: &Tensor) -> Tensor {
    t.detach()
        .to_dtype(DType::F64)
        .unwrap()
        .requires_grad_(true)
        .unwrap()
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_vec::<f64>(), want.to_vec::<f64>());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: got {a}, want {b}"
        );
    }
}

/// Backpropagates the loss `l` of the leaf `a` and checks the loss and `a`'s gradient
/// against the fixture's `name` and `name_grad`.
fn assert_loss_and_grad(f: &HashMap<String, Tensor>, name: &str, l: &Tensor, a: &Tensor) {
    l.backward().unwrap();
    assert_close(name, l, &get(f, name), TOL);
    let grad = format!("{name}_grad");
    assert_close(
        &format!("{name} grad"),
        &a.grad().unwrap(),
        &get(f, &grad),
        TOL,
    );
}

fn scalar(t: &Tensor) -> f64 {
    t.to_vec::<f64>()[0]
}

// ---------------------------------------------------------------- against PyTorch

#[test]
fn content_loss_matches_pytorch() {
    let f = fixtures();
    let a = leaf(&get(&f, "y_hat"));
    let y = leaf(&get(&f, "y"));
    let l = content_loss(&a, &y).unwrap();
    assert_loss_and_grad(&f, "content_loss", &l, &a);
    // y is detached, as in the book.
    assert!(y.grad().is_none(), "the target must get no gradient");
}

#[test]
fn gram_matches_pytorch() {
    let f = fixtures();
    let a = leaf(&get(&f, "y_hat"));
    let g = gram(&a).unwrap();
    assert_close("gram", &g, &get(&f, "gram"), TOL);
    g.mul(&get(&f, "w"))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_close("gram grad", &a.grad().unwrap(), &get(&f, "gram_grad"), TOL);
    // (c, h, w) gives the same matrix as (1, c, h, w).
    let g3 = gram(&get(&f, "y_hat").squeeze(0).unwrap()).unwrap();
    assert_close("gram (c,h,w)", &g3, &get(&f, "gram"), TOL);
    // f32 too.
    let g32 = gram(&get(&f, "y_hat").to_dtype(DType::F32).unwrap()).unwrap();
    assert_eq!(g32.dtype(), DType::F32);
    assert_close(
        "gram f32",
        &g32.to_dtype(DType::F64).unwrap(),
        &get(&f, "gram"),
        TOL,
    );
}

#[test]
fn style_loss_matches_pytorch() {
    let f = fixtures();
    let gs = gram(&get(&f, "s")).unwrap();
    assert_close("gram(s)", &gs, &get(&f, "gram_s"), TOL);
    let a = leaf(&get(&f, "y_hat"));
    let gy = leaf(&gs);
    let l = style_loss(&a, &gy).unwrap();
    assert_loss_and_grad(&f, "style_loss", &l, &a);
    assert!(gy.grad().is_none(), "gram_y must be detached");
}

#[test]
fn tv_loss_matches_pytorch() {
    let f = fixtures();
    let a = leaf(&get(&f, "y_hat"));
    let l = tv_loss(&a).unwrap();
    assert_loss_and_grad(&f, "tv_loss", &l, &a);
}

/// The fixture's compute_loss case: X = y_hat, one content layer, two style layers.
fn fixture_compute_loss(
    f: &HashMap<String, Tensor>,
    a: &Tensor,
    w: &StyleWeights,
) -> (Vec<Tensor>, Vec<Tensor>, Tensor, Tensor) {
    let y = get(f, "y");
    let styles_y_hat = vec![a.clone(), a.mul_scalar(0.5).unwrap().add(&y).unwrap()];
    let grams = vec![get(f, "gram_s"), gram(&y).unwrap()];
    compute_loss(a, std::slice::from_ref(a), &styles_y_hat, &[y], &grams, w).unwrap()
}

#[test]
fn compute_loss_book_matches_pytorch() {
    let f = fixtures();
    let a = leaf(&get(&f, "y_hat"));
    let (cl, sl, tl, total) = fixture_compute_loss(&f, &a, &StyleWeights::book());
    assert_eq!((cl.len(), sl.len()), (1, 2));
    let want_c = get(&f, "book_contents_l").to_vec::<f64>();
    let want_s = get(&f, "book_styles_l").to_vec::<f64>();
    for (i, l) in cl.iter().enumerate() {
        assert_close(
            "contents_l",
            l,
            &Tensor::from_vec(vec![want_c[i]], &[]).unwrap(),
            TOL,
        );
    }
    for (i, l) in sl.iter().enumerate() {
        assert_close(
            "styles_l",
            l,
            &Tensor::from_vec(vec![want_s[i]], &[]).unwrap(),
            TOL,
        );
    }
    assert_close("tv_l", &tl, &get(&f, "book_tv_l"), TOL);
    assert_close("total", &total, &get(&f, "book_total"), TOL);
    total.backward().unwrap();
    assert_close(
        "total grad",
        &a.grad().unwrap(),
        &get(&f, "book_total_grad"),
        TOL,
    );
    assert_eq!(StyleWeights::default(), StyleWeights::book());
}

#[test]
fn book_and_stated_totals_differ_by_nine_style_sums() {
    let f = fixtures();
    let a = get(&f, "y_hat");
    let (c1, s1, t1, book) = fixture_compute_loss(&f, &a, &StyleWeights::book());
    let (c2, s2, t2, stated) = fixture_compute_loss(&f, &a, &StyleWeights::stated());
    // Same individual losses; only the total differs.
    for (x, y) in c1.iter().zip(&c2).chain(s1.iter().zip(&s2)) {
        assert_eq!(scalar(x), scalar(y));
    }
    assert_eq!(scalar(&t1), scalar(&t2));
    let style_sum: f64 = s1.iter().map(scalar).sum();
    let diff = scalar(&book) - scalar(&stated);
    assert!(
        (diff - 9.0 * style_sum).abs() <= 1e-10 * (1.0 + diff.abs()),
        "book − stated = {diff}, 9·Σstyles = {}",
        9.0 * style_sum
    );
    let w = StyleWeights::stated();
    assert_eq!(
        (w.content, w.style, w.tv, w.style_repeat),
        (1.0, 1e3, 10.0, 1.0)
    );
    assert_eq!(StyleWeights::book().style_repeat, 10.0);
    // The stated total is the plain weighted sum.
    let plain = c2.iter().map(scalar).sum::<f64>() + style_sum + scalar(&t2);
    assert!((scalar(&stated) - plain).abs() <= 1e-10 * plain.abs());
}

// ---------------------------------------------------------------- gradient checks

#[test]
fn losses_pass_gradcheck() {
    let mut g = Generator::new(13);
    let x = Tensor::randn_with(&mut g, &[1, 2, 3, 4])
        .to_dtype(DType::F64)
        .unwrap();
    let y = Tensor::randn_with(&mut g, &[1, 2, 3, 4])
        .to_dtype(DType::F64)
        .unwrap();
    let s = Tensor::randn_with(&mut g, &[1, 2, 3, 4])
        .to_dtype(DType::F64)
        .unwrap();
    let gs = gram(&s).unwrap();
    gradcheck(|v| content_loss(&v[0], &y), std::slice::from_ref(&x)).unwrap();
    gradcheck(|v| gram(&v[0]), std::slice::from_ref(&x)).unwrap();
    gradcheck(|v| style_loss(&v[0], &gs), std::slice::from_ref(&x)).unwrap();
    // tv_loss has a kink where neighbours are equal; random normals are far from ties.
    gradcheck(|v| tv_loss(&v[0]), std::slice::from_ref(&x)).unwrap();
    gradcheck(
        |v| {
            let a = &v[0];
            let sy = vec![a.clone(), a.mul_scalar(-0.7)?];
            let grams = vec![gs.clone(), gram(&y)?];
            let (_, _, _, t) = compute_loss(
                a,
                std::slice::from_ref(a),
                &sy,
                std::slice::from_ref(&y),
                &grams,
                &StyleWeights::book(),
            )?;
            Ok(t)
        },
        &[x],
    )
    .unwrap();
}

// ---------------------------------------------------------------- bad inputs

#[test]
fn bad_inputs_are_errors() {
    let x4 = Tensor::zeros(&[1, 3, 4, 4]);
    let x2 = Tensor::zeros(&[3, 16]);
    // content: mismatched shapes, even when they would broadcast.
    assert!(content_loss(&x4, &Tensor::zeros(&[1, 3, 4, 5])).is_err());
    assert!(content_loss(&x4, &Tensor::zeros(&[3, 4, 4])).is_err());
    // gram: wrong rank, batch > 1, empty.
    assert!(gram(&x2).is_err());
    assert!(gram(&Tensor::zeros(&[2, 3, 4, 4])).is_err());
    assert!(gram(&Tensor::zeros(&[1, 2, 3, 4, 5])).is_err());
    assert!(gram(&Tensor::zeros(&[1, 3, 0, 4])).is_err());
    assert!(gram(&Tensor::zeros(&[0, 3, 4])).is_err());
    // style: Gram matrix of the wrong size or rank.
    assert!(style_loss(&x4, &Tensor::zeros(&[4, 4])).is_err());
    assert!(style_loss(&x4, &Tensor::zeros(&[9])).is_err());
    assert!(style_loss(&x2, &Tensor::zeros(&[3, 3])).is_err());
    // tv: wrong rank, too small.
    assert!(tv_loss(&Tensor::zeros(&[3, 4, 4])).is_err());
    assert!(tv_loss(&Tensor::zeros(&[1, 3, 1, 4])).is_err());
    assert!(tv_loss(&Tensor::zeros(&[1, 3, 4, 1])).is_err());
    // compute_loss: unpaired lists, bad shapes inside.
    let w = StyleWeights::book();
    assert!(compute_loss(&x4, std::slice::from_ref(&x4), &[], &[], &[], &w).is_err());
    assert!(compute_loss(&x4, &[], std::slice::from_ref(&x4), &[], &[], &w).is_err());
    assert!(compute_loss(
        &x4,
        &[],
        std::slice::from_ref(&x4),
        &[],
        &[Tensor::zeros(&[2, 2])],
        &w
    )
    .is_err());
    assert!(compute_loss(&x2, &[], &[], &[], &[], &w).is_err());
    // images.
    assert!(preprocess(&Tensor::zeros(&[1, 3, 4, 4]), None).is_err());
    assert!(preprocess(&Tensor::zeros(&[4, 4, 4]), None).is_err());
    assert!(postprocess(&Tensor::zeros(&[2, 3, 4, 4])).is_err());
    assert!(postprocess(&Tensor::zeros(&[4, 4])).is_err());
    assert!(postprocess(&Tensor::zeros_dtype(&[3, 2, 2], DType::U8)).is_err());
    // features: an index past the last layer.
    let id = |x: &Tensor| -> Result<Tensor> { Ok(x.clone()) };
    assert!(extract_features(&[id, id], &x4, &[2], &[0], false).is_err());
    assert!(select_features(std::slice::from_ref(&x4), &[0], &[1], true).is_err());
}

// ---------------------------------------------------------------- images and layers

#[test]
fn preprocess_and_postprocess_round_trip() {
    let mut g = Generator::new(7);
    let img = Tensor::rand_with(&mut g, &[3, 5, 6]);
    let x = preprocess(&img, None).unwrap();
    assert_eq!(x.shape(), &[1, 3, 5, 6]);
    let (iv, xv) = (img.to_vec::<f32>(), x.to_vec::<f32>());
    for (i, (p, q)) in iv.iter().zip(&xv).enumerate() {
        let c = i / 30;
        let want = (p - RGB_MEAN[c]) / RGB_STD[c];
        assert!((q - want).abs() < 1e-5, "preprocess[{i}]: {q} vs {want}");
    }
    let back = postprocess(&x).unwrap();
    assert_eq!(back.shape(), &[3, 5, 6]);
    for (p, q) in iv.iter().zip(back.to_vec::<f32>()) {
        assert!((p - q).abs() < 1e-5);
    }
    // Out-of-range values are clamped to [0, 1]; (3, H, W) is accepted too.
    let far = Tensor::from_vec(vec![10.0f32, -10.0, 0.0], &[3, 1, 1]).unwrap();
    let v = postprocess(&far).unwrap().to_vec::<f32>();
    assert_eq!(v[0], 1.0);
    assert_eq!(v[1], 0.0);
    assert!((v[2] - RGB_MEAN[2]).abs() < 1e-7);
    // uint8 goes through ToTensor, and a size resizes.
    let u8img = Tensor::full_dtype(&[3, 4, 4], 255.0, DType::U8);
    let x = preprocess(&u8img, Some((2, 3))).unwrap();
    assert_eq!(x.shape(), &[1, 3, 2, 3]);
    let v = x.to_vec::<f32>();
    assert!((v[0] - (1.0 - RGB_MEAN[0]) / RGB_STD[0]).abs() < 1e-5);
}

#[test]
fn layer_constants_are_the_books() {
    assert_eq!(style_layers(), &[0, 5, 10, 19, 28]);
    assert_eq!(content_layers(), &[25]);
}

#[test]
fn extract_features_pre_and_post_relu() {
    // Layers: 0 "conv" (x − 1), 1 relu, 2 "conv" (2x − 3), 3 relu, 4 "conv" (x − 5): the last
    // one has no ReLU after it, like conv5_1 (28) in the book's truncated VGG.
    let layers: Vec<Layer> = vec![
        Box::new(|x: &Tensor| x.sub_scalar(1.0)),
        Box::new(|x: &Tensor| x.relu()),
        Box::new(|x: &Tensor| x.mul_scalar(2.0)?.sub_scalar(3.0)),
        Box::new(|x: &Tensor| x.relu()),
        Box::new(|x: &Tensor| x.sub_scalar(5.0)),
    ];
    let x = Tensor::from_vec(vec![0.0f32, 3.0], &[2]).unwrap();
    let (c, s) = extract_features(&layers, &x, &[2], &[0, 4], false).unwrap();
    assert_eq!(c[0].to_vec::<f32>(), vec![-3.0, 1.0]);
    assert_eq!(s[0].to_vec::<f32>(), vec![-1.0, 2.0]);
    assert_eq!(s[1].to_vec::<f32>(), vec![-5.0, -4.0]);
    let (c, s) = extract_features(&layers, &x, &[2], &[0, 4], true).unwrap();
    assert_eq!(c[0].to_vec::<f32>(), vec![0.0, 1.0]);
    assert_eq!(s[0].to_vec::<f32>(), vec![0.0, 2.0]);
    // The last layer has no following ReLU: pre-ReLU in both modes (as the book's 28).
    assert_eq!(s[1].to_vec::<f32>(), vec![-5.0, -4.0]);
}

// ---------------------------------------------------------------- a tiny optimisation

/// Conv(3→8, 3×3, pad 1) – ReLU – Conv(8→8) – ReLU – Conv(8→8) – ReLU, random frozen
/// weights (Kaiming-like scale), as boxed layers.
fn tiny_net(g: &mut Generator) -> Vec<Layer> {
    let mut layers: Vec<Layer> = Vec::new();
    for (ci, co) in [(3usize, 8usize), (8, 8), (8, 8)] {
        let std = (2.0 / (ci * 9) as f64).sqrt();
        let w = Tensor::normal_with(g, &[co, ci, 3, 3], 0.0, std).unwrap();
        let b = Tensor::normal_with(g, &[co], 0.0, 0.05).unwrap();
        let opts = Conv2dOptions {
            padding: (1, 1, 1, 1),
            ..Conv2dOptions::default()
        };
        layers.push(Box::new(move |x: &Tensor| x.conv2d(&w, Some(&b), &opts)));
        layers.push(Box::new(|x: &Tensor| x.relu()));
    }
    layers
}

/// PyTorch's Adam (no weight decay, no amsgrad) on one parameter.
struct Adam {
    lr: f64,
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Adam {
    fn step(&mut self, p: &Tensor) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.t += 1;
        let g = p.grad().unwrap().to_vec::<f64>();
        let mut w = p.to_vec::<f64>();
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for i in 0..w.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            w[i] -= self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + eps);
        }
        let new = Tensor::from_vec(w, p.shape()).unwrap();
        no_grad(|| p.copy_(&new)).unwrap();
        p.zero_grad();
    }
}

#[test]
fn tiny_style_transfer_halves_the_loss() {
    let mut g = Generator::new(1312);
    let net = tiny_net(&mut g);
    let (content_idx, style_idx) = ([4usize], [0usize, 2, 4]);
    let content_img = Tensor::randn_with(&mut g, &[1, 3, 16, 16]);
    let style_img = Tensor::randn_with(&mut g, &[1, 3, 16, 16]);
    let (contents_y, _) =
        no_grad(|| extract_features(&net, &content_img, &content_idx, &style_idx, true)).unwrap();
    let (_, styles) =
        no_grad(|| extract_features(&net, &style_img, &content_idx, &style_idx, true)).unwrap();
    let styles_y_gram = styles.iter().map(|s| gram(s).unwrap()).collect::<Vec<_>>();

    let x = Tensor::randn_with(&mut g, &[1, 3, 16, 16])
        .requires_grad_(true)
        .unwrap();
    let mut adam = Adam {
        lr: 0.1,
        t: 0,
        m: vec![0.0; x.numel()],
        v: vec![0.0; x.numel()],
    };
    let weights = StyleWeights::book();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let (c_hat, s_hat) = extract_features(&net, &x, &content_idx, &style_idx, true).unwrap();
        let (_, _, _, total) =
            compute_loss(&x, &c_hat, &s_hat, &contents_y, &styles_y_gram, &weights).unwrap();
        losses.push(total.item().unwrap() as f64);
        total.backward().unwrap();
        adam.step(&x);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    println!("tiny style transfer: total {first} → {last}");
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        last <= 0.5 * first,
        "total loss {first} → {last} did not halve: {losses:?}"
    );
}
