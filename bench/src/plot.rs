//! The latency-by-percentile PNG of `lockstep bench`, drawn the way
//! HdrHistogram's plotter draws `.hgrm` files: the x axis is 1/(1-p) on a log
//! scale, labelled as percentiles (0%, 90%, 99%, 99.9%, ...), so every added
//! nine gets the same width; the y axis is the latency in microseconds, on a
//! log scale too, so a p50 of tens of microseconds and a maximum of tens of
//! milliseconds are both readable. `plotters` draws the grid and the lines
//! into an RGB buffer, [`crate::text`] paints the text with an embedded face
//! (no system fonts), and `png` encodes it.

use crate::text::{Align, Label, TextPainter};
use hdrhistogram::Histogram;
use plotters::prelude::*;
use std::path::Path;

/// One line of the plot.
pub struct PlotSeries<'a> {
    pub name: String,
    pub histogram: &'a Histogram<u64>,
    /// Drawn thinner (baselines).
    pub thin: bool,
    /// Series of one group share a colour (a run and its baseline).
    pub group: usize,
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 720;
const MARGIN_LEFT: u32 = 90;
const MARGIN_RIGHT: u32 = 45;
const MARGIN_TOP: u32 = 70;
const MARGIN_BOTTOM: u32 = 70;
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// The points of one histogram: (1/(1-p), latency in µs), without p = 1.
fn points(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    histogram
        .iter_quantiles(crate::hgrm::TICKS_PER_HALF_DISTANCE)
        .filter(|step| step.quantile_iterated_to() < 1.0)
        .map(|step| {
            (
                1.0 / (1.0 - step.quantile_iterated_to()),
                (step.value_iterated_to() as f64 / 1_000.0).max(0.001),
            )
        })
        .collect()
}

/// "99.9%" for x = 1000.
fn percentile_label(x: f64) -> String {
    let percent = 100.0 * (1.0 - 1.0 / x);
    let text = format!("{percent:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// "0.5", "20", "1000".
fn value_label(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Powers of ten within `low..=high`, with 2x and 5x steps when there are
/// few of them.
fn log_ticks(low: f64, high: f64) -> Vec<f64> {
    let decades = (low.log10().floor() as i32)..=(high.log10().ceil() as i32);
    let steps: &[f64] = if high / low < 1_000.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    decades
        .flat_map(|decade| steps.iter().map(move |step| step * 10f64.powi(decade)))
        .filter(|tick| (low..=high).contains(tick))
        .collect()
}

/// Draws `series` and writes the PNG to `path`.
pub fn write_latency_plot(path: &Path, title: &str, series: &[PlotSeries]) -> Result<(), String> {
    let painter = TextPainter::new()?;
    let lines: Vec<(&PlotSeries, Vec<(f64, f64)>)> = series
        .iter()
        .map(|line| (line, points(line.histogram)))
        .filter(|(_, points)| !points.is_empty())
        .collect();
    let x_top = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|point| point.0))
        .fold(100.0f64, f64::max);
    let x_max = 10f64.powf(x_top.log10().ceil());
    let values = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|point| point.1));
    let y_min = values.clone().fold(f64::MAX, f64::min);
    let y_max = values.fold(0.0f64, f64::max);
    let (y_min, y_max) = if lines.is_empty() {
        (1.0, 1000.0)
    } else {
        (y_min / 1.5, (y_max * 1.5).max(y_min * 10.0))
    };
    let mut labels = vec![Label {
        x: (WIDTH / 2) as i32,
        y: 20,
        size: 24.0,
        align: Align::Centre,
        text: title.to_string(),
    }];
    let mut buffer = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let drawing = |error: &dyn std::fmt::Display| format!("plot: {error}");
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| drawing(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin_left(MARGIN_LEFT)
            .margin_right(MARGIN_RIGHT)
            .margin_top(MARGIN_TOP)
            .margin_bottom(MARGIN_BOTTOM)
            .build_cartesian_2d((1.0..x_max).log_scale(), (y_min..y_max).log_scale())
            .map_err(|e| drawing(&e))?;
        // No label areas: plotters draws the grid only, the text is ours.
        chart
            .configure_mesh()
            .bold_line_style(RGBColor(190, 190, 190))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(|e| drawing(&e))?;
        let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
        root.draw(&Rectangle::new(
            [
                (x_pixels.start, y_pixels.start),
                (x_pixels.end, y_pixels.end),
            ],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| drawing(&e))?;
        for tick in log_ticks(1.0, x_max) {
            let (x, _) = chart.backend_coord(&(tick, y_min));
            labels.push(Label {
                x,
                y: y_pixels.end + 8,
                size: 15.0,
                align: Align::Centre,
                text: percentile_label(tick),
            });
        }
        for tick in log_ticks(y_min, y_max) {
            let (_, y) = chart.backend_coord(&(1.0, tick));
            labels.push(Label {
                x: x_pixels.start - 8,
                y: y - 9,
                size: 15.0,
                align: Align::Right,
                text: value_label(tick),
            });
        }
        labels.push(Label {
            x: (x_pixels.start + x_pixels.end) / 2,
            y: y_pixels.end + 35,
            size: 16.0,
            align: Align::Centre,
            text: "percentile".to_string(),
        });
        labels.push(Label {
            x: x_pixels.start,
            y: y_pixels.start - 24,
            size: 16.0,
            align: Align::Left,
            text: "latency (µs)".to_string(),
        });
        for (line, points) in &lines {
            let colour = COLOURS[line.group % COLOURS.len()];
            let width = if line.thin { 1 } else { 3 };
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(width),
                ))
                .map_err(|e| drawing(&e))?;
        }
        // The legend, top left inside the plot.
        if !lines.is_empty() {
            let text_width = lines
                .iter()
                .map(|(line, _)| painter.width(15.0, &line.name))
                .fold(0.0f32, f32::max) as i32;
            let left = x_pixels.start + 12;
            let top = y_pixels.start + 12;
            let row = 22;
            root.draw(&Rectangle::new(
                [
                    (left, top),
                    (left + 48 + text_width, top + 8 + row * lines.len() as i32),
                ],
                ShapeStyle::from(&WHITE).filled(),
            ))
            .map_err(|e| drawing(&e))?;
            root.draw(&Rectangle::new(
                [
                    (left, top),
                    (left + 48 + text_width, top + 8 + row * lines.len() as i32),
                ],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| drawing(&e))?;
            for (index, (line, _)) in lines.iter().enumerate() {
                let colour = COLOURS[line.group % COLOURS.len()];
                let y = top + 4 + row * index as i32 + row / 2;
                let width = if line.thin { 1 } else { 3 };
                root.draw(&PathElement::new(
                    vec![(left + 8, y), (left + 34, y)],
                    colour.stroke_width(width),
                ))
                .map_err(|e| drawing(&e))?;
                labels.push(Label {
                    x: left + 40,
                    y: y - 9,
                    size: 15.0,
                    align: Align::Left,
                    text: line.name.clone(),
                });
            }
        }
        root.present().map_err(|e| drawing(&e))?;
    }
    for label in &labels {
        painter.paint(&mut buffer, WIDTH, HEIGHT, label);
    }
    let file =
        std::fs::File::create(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&buffer))
        .map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_labelled_like_hdrhistograms_plotter() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(1e5), "99.999%");
    }

    #[test]
    fn log_ticks_are_decades_or_finer_steps() {
        assert_eq!(
            log_ticks(1.0, 1e4),
            vec![1.0, 10.0, 100.0, 1_000.0, 10_000.0]
        );
        assert_eq!(log_ticks(15.0, 150.0), vec![20.0, 50.0, 100.0]);
        assert_eq!(value_label(0.5), "0.5");
        assert_eq!(value_label(1000.0), "1000");
    }
}
