//! Rendering of the model: each module turns a [`crate::model::Demo`] into markup and
//! holds no state of its own. Colours are CSS classes defined in `www/style.css`, so the
//! network view, the chart and the legends share one palette.

pub mod chart;
pub mod controls;
pub mod metrics;
pub mod network;

use yew::prelude::*;

/// CSS class naming a device class's colour (`class-0`, `class-1`, ...; the palette repeats).
pub fn class_css(class: usize) -> String {
    format!("class-{}", class % 6)
}

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
}
