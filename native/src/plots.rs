//! PNG plots of `edgewise experiment` with plotters' bitmap backend.
//!
//! Text is drawn with plotters' `ab_glyph` renderer and DejaVu Sans embedded from the
//! `dejavu` crate, so no system font (fontconfig, freetype) is needed. Files are drawn to
//! a temporary name and renamed into place.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use edgewise_rl::experiment::{Interval, band};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::experiment_view::{AlgoCurves, Curve, LatencySeries, View};

const FONT: &str = "sans-serif";
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn register_font() -> anyhow::Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "the embedded DejaVu Sans font could not be registered"
        ))
    }
}

/// Draw into `path` through a temporary file renamed into place.
fn draw_atomic(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = edgewise_atomic_file::temp_beside(path, ".png")?;
    {
        let root = BitMapBackend::new(tmp.path(), size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("writing {}", tmp.path().display()))?;
    }
    edgewise_atomic_file::persist(tmp, path)?;
    Ok(())
}

/// Steps grid for bands.
fn grid(max: u64, points: u64) -> Vec<u64> {
    (1..=points).map(|i| max * i / points).collect()
}

/// Write every plot into `dir`; returns the files written.
///
/// # Errors
/// When a file cannot be written.
pub fn write_all(dir: &Path, view: &View) -> anyhow::Result<Vec<PathBuf>> {
    register_font()?;
    let mut out = Vec::new();
    let path = dir.join("learning_curves.png");
    learning_curves(
        &path,
        &view.trained_on,
        &view.curves,
        &view.refs,
        view.env_steps,
    )?;
    out.push(path);
    for (scenario, series) in &view.latency {
        let path = dir.join(format!("latency_{scenario}.png"));
        latency(&path, scenario, series)?;
        out.push(path);
    }
    if view.wm_error.iter().any(|c| !c.is_empty()) {
        let path = dir.join("wm_error.png");
        wm_error(&path, &view.wm_error, view.env_steps)?;
        out.push(path);
    }
    Ok(out)
}

fn bounds(points: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = points
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo.is_finite() && hi > lo {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    } else if lo.is_finite() {
        (lo - 1.0, lo + 1.0)
    } else {
        (0.0, 1.0)
    }
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("{e}")
}

#[allow(clippy::cast_precision_loss)]
fn learning_curves(
    path: &Path,
    trained_on: &str,
    algos: &[AlgoCurves],
    refs: &[(String, f64)],
    env_steps: u64,
) -> anyhow::Result<()> {
    let g = grid(env_steps, 40);
    let bands: Vec<(String, Vec<(u64, Interval)>)> = algos
        .iter()
        .map(|(a, cs)| (a.clone(), band(cs, &g)))
        .collect();
    let ys = bands
        .iter()
        .flat_map(|(_, b)| {
            b.iter()
                .flat_map(|(_, i)| [i.mean - i.half_width, i.mean + i.half_width])
        })
        .chain(refs.iter().map(|r| r.1));
    let (lo, hi) = bounds(ys);
    draw_atomic(path, (900, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Training return, {trained_on} (mean and 95% CI over seeds)"),
                (FONT, 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..env_steps as f64, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("real environment steps")
            .y_desc("episode return")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, (name, b)) in bands.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, Interval)> = b
                .iter()
                .filter(|(_, iv)| iv.mean.is_finite())
                .map(|(s, iv)| (*s as f64, *iv))
                .collect();
            let mut poly: Vec<(f64, f64)> = pts
                .iter()
                .map(|(x, iv)| (*x, iv.mean + iv.half_width))
                .collect();
            poly.extend(
                pts.iter()
                    .rev()
                    .map(|(x, iv)| (*x, iv.mean - iv.half_width)),
            );
            if poly.len() > 2 {
                chart
                    .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.2).filled())))
                    .map_err(err)?;
            }
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|(x, iv)| (*x, iv.mean)),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        for (j, (name, v)) in refs.iter().enumerate() {
            let c = PALETTE[(j + algos.len()) % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    [(0.0, *v), (env_steps as f64, *v)],
                    c.stroke_width(1),
                ))
                .map_err(err)?
                .label(format!("{name} (held-out)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

#[allow(clippy::cast_precision_loss)]
fn latency(path: &Path, scenario: &str, series: &LatencySeries) -> anyhow::Result<()> {
    let pops: Vec<usize> = series
        .first()
        .map(|s| s.1.iter().map(|p| p.0).collect())
        .unwrap_or_default();
    let (_, hi) = bounds(
        series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.1.mean + p.1.half_width.max(0.0))),
    );
    let n = pops.len().max(1) as f64;
    draw_atomic(path, (900, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Mean query latency, {scenario} scenario (95% CI)"),
                (FONT, 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..hi)
            .map_err(err)?;
        let labels = pops.clone();
        chart
            .configure_mesh()
            .x_desc("devices")
            .y_desc("mean latency (s)")
            .x_labels(pops.len())
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels
                        .get(i as usize)
                        .map_or_else(String::new, ToString::to_string)
                } else {
                    String::new()
                }
            })
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (k, (name, pts)) in series.iter().enumerate() {
            let c = PALETTE[k % PALETTE.len()];
            let xy: Vec<(f64, Interval)> = pts
                .iter()
                .enumerate()
                .filter(|(_, p)| p.1.mean.is_finite())
                .map(|(i, p)| (i as f64, p.1))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    xy.iter().map(|(x, iv)| (*x, iv.mean)),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(xy.iter().map(|(x, iv)| {
                    ErrorBar::new_vertical(
                        *x,
                        iv.mean - iv.half_width,
                        iv.mean,
                        iv.mean + iv.half_width,
                        c.filled(),
                        8,
                    )
                }))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

#[allow(clippy::cast_precision_loss)]
fn wm_error(path: &Path, curves: &[Curve], env_steps: u64) -> anyhow::Result<()> {
    let g = grid(env_steps, 40);
    let b = band(curves, &g);
    let (_, hi) = bounds(b.iter().map(|(_, i)| i.mean + i.half_width));
    let hi = hi.min(3.0);
    draw_atomic(path, (900, 500), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "World-model validation error (held out, mean and 95% CI)",
                (FONT, 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..env_steps as f64, 0f64..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("real environment steps")
            .y_desc("validation error")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let c = PALETTE[1];
        chart
            .draw_series(LineSeries::new(
                b.iter()
                    .filter(|(_, i)| i.mean.is_finite())
                    .map(|(s, i)| (*s as f64, i.mean.min(hi))),
                c.stroke_width(2),
            ))
            .map_err(err)?
            .label("WM-PPO")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// One variant in the `edgewise eval` trade-off plot.
pub struct TradeoffPoint {
    pub name: String,
    pub megabytes: f64,
    pub accuracy: f64,
    pub hallucination: f64,
}

/// `edgewise eval`'s trade-off plot: file size against multiple-choice accuracy (left) and
/// against hallucination rate (right), one labelled point per variant.
pub fn tradeoff(path: &Path, points: &[TradeoffPoint]) -> anyhow::Result<()> {
    register_font()?;
    let (_, max_mb) = bounds(points.iter().map(|p| p.megabytes));
    let x_hi = (max_mb * 1.25).max(1.0);
    draw_atomic(path, (1200, 520), |root| {
        let panels = root.split_evenly((1, 2));
        type Pick = fn(&TradeoffPoint) -> f64;
        let accuracy: Pick = |p| p.accuracy;
        let hallucination: Pick = |p| p.hallucination;
        for (panel, (title, y_desc, pick)) in panels.iter().zip([
            ("Size vs accuracy (multiple choice)", "accuracy", accuracy),
            (
                "Size vs hallucination rate",
                "hallucination rate",
                hallucination,
            ),
        ]) {
            let mut chart = ChartBuilder::on(panel)
                .caption(title, (FONT, 20))
                .margin(14)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..x_hi, 0f64..1f64)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("file size (MB)")
                .y_desc(y_desc)
                .label_style((FONT, 14))
                .draw()
                .map_err(err)?;
            for (k, p) in points.iter().enumerate() {
                let c = PALETTE[k % PALETTE.len()];
                let xy = (p.megabytes, pick(p).clamp(0.0, 1.0));
                chart
                    .draw_series(std::iter::once(Circle::new(xy, 6, c.filled())))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        p.name.clone(),
                        (xy.0, xy.1 + 0.03),
                        (FONT, 13).into_font().color(&c),
                    )))
                    .map_err(err)?;
            }
        }
        Ok(())
    })
}
