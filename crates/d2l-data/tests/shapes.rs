//! The built-in `shapes` set: deterministic, balanced, sane pixel statistics, and not
//! trivial (a nearest-class-mean classifier on raw pixels is far from perfect, and the mean
//! brightness alone does not give the class away).

use d2l_data::shapes::{Shapes, SHAPES_CLASSES};

fn means(set: &d2l_data::idx::ImageSet) -> Vec<Vec<f64>> {
    let px = set.height * set.width;
    let mut sums = vec![vec![0.0f64; px]; 10];
    let mut counts = [0usize; 10];
    for i in 0..set.n {
        let c = set.labels[i] as usize;
        counts[c] += 1;
        for (s, &p) in sums[c].iter_mut().zip(set.image(i).unwrap()) {
            *s += p as f64;
        }
    }
    for (s, &n) in sums.iter_mut().zip(&counts) {
        s.iter_mut().for_each(|v| *v /= n as f64);
    }
    sums
}

fn nearest(m: &[Vec<f64>], img: &[u8]) -> usize {
    let d = |c: &Vec<f64>| {
        c.iter()
            .zip(img)
            .map(|(a, &b)| (a - b as f64).powi(2))
            .sum::<f64>()
    };
    (0..m.len())
        .min_by(|&a, &b| d(&m[a]).total_cmp(&d(&m[b])))
        .unwrap()
}

#[test]
fn deterministic_from_the_seed() {
    let a = Shapes::generate(300, 7);
    let b = Shapes::generate(300, 7);
    assert_eq!(a, b);
    let c = Shapes::generate(300, 8);
    assert_ne!(a.images, c.images);
    assert_ne!(a.labels, c.labels);
    assert_eq!((a.n, a.height, a.width), (300, 28, 28));
    assert_eq!(a.images.len(), 300 * 784);
    // the test split uses a different stream
    assert_eq!(SHAPES_CLASSES.len(), 10);
    assert_eq!(Shapes::generate(0, 1).n, 0);
}

#[test]
fn balanced_and_sane_pixels() {
    let t = std::time::Instant::now();
    let s = Shapes::generate(10_000, 0);
    println!("generated 10000 shapes images in {:?}", t.elapsed());
    let mut counts = [0usize; 10];
    for &l in &s.labels {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [1000; 10]);
    let n = s.images.len() as f64;
    let mean = s.images.iter().map(|&p| p as f64).sum::<f64>() / n;
    let std = (s
        .images
        .iter()
        .map(|&p| (p as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    println!("pixel mean {mean:.1}, std {std:.1}");
    assert!(mean > 15.0 && mean < 90.0, "mean {mean}");
    assert!(std > 30.0, "std {std}");
    // every image has an object (some bright pixels) and is not saturated everywhere
    for i in 0..s.n {
        let img = s.image(i).unwrap();
        let bright = img.iter().filter(|&&p| p > 120).count();
        assert!(
            (8..700).contains(&bright),
            "image {i} (class {}): {bright} bright pixels",
            s.labels[i]
        );
    }
}

#[test]
fn not_trivial_for_a_nearest_class_mean() {
    let train = Shapes::generate(6000, 1);
    let test = Shapes::load(false, 1);
    let test = test.subset(0..2000).unwrap();
    let m = means(&train);
    let correct = (0..test.n)
        .filter(|&i| nearest(&m, test.image(i).unwrap()) == test.labels[i] as usize)
        .count();
    let acc = correct as f64 / test.n as f64;
    println!("nearest-class-mean accuracy on raw pixels: {acc:.3}");
    assert!(acc > 0.2, "above chance: {acc}");
    assert!(acc < 0.8, "well below perfect: {acc}");

    // mean brightness alone: classify by the nearest per-class mean brightness
    let bright = |img: &[u8]| img.iter().map(|&p| p as f64).sum::<f64>() / img.len() as f64;
    let mut cm = [0.0f64; 10];
    let mut cn = [0usize; 10];
    for i in 0..train.n {
        cm[train.labels[i] as usize] += bright(train.image(i).unwrap());
        cn[train.labels[i] as usize] += 1;
    }
    for c in 0..10 {
        cm[c] /= cn[c] as f64;
    }
    let hits = (0..test.n)
        .filter(|&i| {
            let b = bright(test.image(i).unwrap());
            let k = (0..10)
                .min_by(|&x, &y| (cm[x] - b).abs().total_cmp(&(cm[y] - b).abs()))
                .unwrap();
            k == test.labels[i] as usize
        })
        .count();
    let bacc = hits as f64 / test.n as f64;
    println!("brightness-only accuracy: {bacc:.3}; class mean brightness {cm:.1?}");
    assert!(
        bacc < 0.35,
        "brightness should not identify the class: {bacc}"
    );
}
