//! COCO-style mAP against pycocotools (fixture by scripts/gen_coco_eval_fixtures.py) and
//! on cases worked by hand.

use d2l_vision::coco_eval::*;

fn parse_mask(s: Option<&&str>) -> Option<Vec<bool>> {
    s.map(|m| m.bytes().map(|b| b == b'1').collect())
}

#[test]
fn map_matches_pycocotools() {
    let text = include_str!("fixtures/coco_eval.txt");
    let (mut gts, mut dts) = (Vec::new(), Vec::new());
    let mut cases = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f[i].parse::<f32>().unwrap();
        match f[0] {
            "case" => {
                gts.clear();
                dts.clear();
            }
            "gt" => gts.push(EvalTruth {
                image: f[1].parse().unwrap(),
                class: f[2].parse().unwrap(),
                bbox: [num(3), num(4), num(5), num(6)],
                mask: parse_mask(f.get(7)),
            }),
            "dt" => dts.push(EvalDetection {
                image: f[1].parse().unwrap(),
                class: f[2].parse().unwrap(),
                score: num(3),
                bbox: [num(4), num(5), num(6), num(7)],
                mask: parse_mask(f.get(8)),
            }),
            kind @ ("bbox" | "segm") => {
                let want: Vec<f64> = f[1..4].iter().map(|v| v.parse().unwrap()).collect();
                let k = if kind == "bbox" {
                    IouKind::Box
                } else {
                    IouKind::Mask
                };
                let m = evaluate(&dts, &gts, k);
                let got = [m.ap, m.ap50, m.ap75];
                for (g, w) in got.iter().zip(&want) {
                    // pycocotools computes box IoU in f64 from xywh; ours is the f32 kernel.
                    assert!(
                        (g - w).abs() < 1e-6,
                        "{kind}: got {got:?}, pycocotools {want:?}"
                    );
                }
                assert!(want[0] > 0.05, "the fixture should not be degenerate");
                cases += 1;
            }
            "end" => {}
            other => panic!("unknown record {other}"),
        }
    }
    assert_eq!(cases, 5);
}

fn gt(image: usize, class: usize, b: [f32; 4]) -> EvalTruth {
    EvalTruth {
        image,
        class,
        bbox: b,
        mask: None,
    }
}
fn dt(image: usize, class: usize, score: f32, b: [f32; 4]) -> EvalDetection {
    EvalDetection {
        image,
        class,
        score,
        bbox: b,
        mask: None,
    }
}

#[test]
fn hand_worked_cases() {
    let a = [0.0, 0.0, 10.0, 10.0];
    let b = [20.0, 20.0, 30.0, 30.0];
    // Perfect: AP 1 everywhere.
    let m = evaluate(&[dt(0, 1, 0.9, a)], &[gt(0, 1, a)], IouKind::Box);
    assert!((m.ap50 - 1.0).abs() < 1e-12 && (m.ap - 1.0).abs() < 1e-12);
    // A false positive ranked first: precision 1/2 at recall 1, for all 101 points.
    let m = evaluate(
        &[dt(0, 1, 0.9, b), dt(0, 1, 0.8, a)],
        &[gt(0, 1, a)],
        IouKind::Box,
    );
    assert!((m.ap50 - 0.5).abs() < 1e-12);
    // Half the objects found: precision 1 up to recall 0.5 (51 of 101 points).
    let m = evaluate(
        &[dt(0, 1, 0.9, a)],
        &[gt(0, 1, a), gt(0, 1, b)],
        IouKind::Box,
    );
    assert!((m.ap50 - 51.0 / 101.0).abs() < 1e-12);
    // A duplicate is a false positive; the wrong class finds nothing; classes average.
    let m = evaluate(
        &[dt(0, 1, 0.9, a), dt(0, 1, 0.8, a), dt(1, 2, 0.7, b)],
        &[gt(0, 1, a), gt(1, 1, b)],
        IouKind::Box,
    );
    assert!((m.ap50 - 51.0 / 101.0).abs() < 1e-12);
    assert_eq!(m.per_class.len(), 1);
    // IoU exactly 0.6 counts at 0.5, 0.55 and 0.6 (a match needs IoU >= t): 3/10 of AP@.5.
    let shifted = [0.0, 0.0, 10.0, 6.0];
    let m = evaluate(&[dt(0, 1, 0.9, shifted)], &[gt(0, 1, a)], IouKind::Box);
    assert!((m.ap50 - 1.0).abs() < 1e-12 && (m.ap - 0.3).abs() < 1e-12 && m.ap75 == 0.0);
    assert!(
        (map_at(&[dt(0, 1, 0.9, shifted)], &[gt(0, 1, a)], IouKind::Box, 0.6) - 1.0).abs() < 1e-12
    );
    // No ground truth at all: undefined.
    assert!(evaluate(&[dt(0, 1, 0.9, a)], &[], IouKind::Box).ap.is_nan());
    // Mask IoU.
    assert_eq!(
        mask_iou(&[true, true, false, false], &[true, false, true, false]),
        1.0 / 3.0
    );
}
