//! Formatting shared by every view: numbers, percentages, SVG coordinates, chart axes,
//! legend entries and a knob's value with its unit.

use mec::{Knob, KnobUnit};
use yew::prelude::*;

use crate::scenario::num;

/// A legend entry: a swatch drawn with `swatch` classes, then a label.
pub fn legend_item(swatch: &'static str, extra: Classes, label: &str) -> Html {
    html! {
        <li class="legend-item">
            <span class={classes!("swatch", swatch, extra)} aria-hidden="true"></span>
            { label.to_owned() }
        </li>
    }
}

/// Format a quantity with a fixed number of decimals, or a dash when it is not a number.
pub fn fixed(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "–".to_owned()
    }
}

/// Format a fraction as a percentage.
pub fn percent(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{:.decimals$} %", x * 100.0)
    } else {
        "–".to_owned()
    }
}

/// Format a bound given as a fraction as a percentage with at most one decimal
/// (`0.63` → `63 %`, `0.115` → `11.5 %`).
pub fn percent_bound(x: f64) -> String {
    if !x.is_finite() {
        return "–".to_owned();
    }
    let text = format!("{:.1}", x * 100.0);
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} %")
}

/// An SVG coordinate.
pub fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

/// A knob's value as a slider shows it (`20`, `5 MHz`, `100 %`, `0.1/slot per device`).
#[must_use]
pub fn knob_value(knob: &Knob, v: f64) -> String {
    match knob.unit {
        KnobUnit::Count => format!("{v:.0}"),
        KnobUnit::Megahertz => format!("{} MHz", num(v)),
        KnobUnit::Scale => format!("{} %", num(v * 100.0)),
        KnobUnit::Fraction => percent_bound(v),
        KnobUnit::PerDevicePerSlot => format!("{}/slot per device", num(v)),
        KnobUnit::Ratio => format!("×{}", num(v)),
    }
}

/// A round range covering `[lo, hi]` and its tick step (at most about 5 ticks).
pub fn nice_range(lo: f64, hi: f64) -> (f64, f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let raw_step = (hi - lo) / 4.0;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw_step)
        .unwrap_or(10.0 * magnitude);
    let y0 = (lo / step).floor() * step;
    let y1 = ((hi / step).ceil() * step).max(y0 + step);
    (y0, y1, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(percent_bound(0.63), "63 %");
        assert_eq!(percent_bound(0.115), "11.5 %");
        assert_eq!(percent_bound(f64::NAN), "–");
        assert_eq!(percent(0.5, 0), "50 %");
        assert_eq!(fixed(f64::INFINITY, 2), "–");
        assert_eq!(fixed(1.234, 2), "1.23");
    }

    #[test]
    fn nice_ranges_cover_the_data() {
        for (lo, hi) in [
            (0.0, 0.42),
            (0.58, 0.71),
            (0.0, 13.0),
            (0.0, 480.0),
            (0.3, 0.3),
        ] {
            let (y0, y1, step) = nice_range(lo, hi);
            assert!(y0 <= lo && (y1 >= hi || hi <= lo), "{lo} {hi}: {y0} {y1}");
            assert!(
                (y1 - y0) / step <= 6.0 + 1e-9,
                "{lo} {hi}: {y0} {y1} {step}"
            );
        }
        assert_eq!(nice_range(f64::NAN, 1.0), nice_range(0.0, 1.0));
    }

    #[test]
    fn knob_values_show_their_units() {
        let show = |key, v| knob_value(Knob::by_key(key).unwrap(), v);
        assert_eq!(show("devices", 20.0), "20");
        assert_eq!(show("bandwidth", 5.0), "5 MHz");
        assert_eq!(show("budget", 0.65), "65 %");
        assert_eq!(show("min-accuracy", 0.115), "11.5 %");
        assert_eq!(show("load", 0.1), "0.1/slot per device");
    }
}
