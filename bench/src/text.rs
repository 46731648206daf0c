//! Text for the bench's PNG, painted straight into its RGB buffer with
//! `ab_glyph` and the DejaVu Sans face embedded in the binary (the `dejavu`
//! crate), so a plot needs no system fonts and no fontconfig. `plotters`
//! draws only the lines (its font features stay off: turning one on for the
//! whole build would change how criterion's own plots find their fonts).

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};

/// Where a text's position is, along its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Centre,
    Right,
}

/// One text to paint: `y` is the top of the line.
pub(crate) struct Label {
    pub(crate) x: i32,
    pub(crate) y: i32,
    pub(crate) size: f32,
    pub(crate) align: Align,
    pub(crate) text: String,
}

/// Paints labels into an RGB buffer of `width` x `height` pixels.
pub(crate) struct TextPainter {
    font: FontRef<'static>,
}

impl TextPainter {
    pub(crate) fn new() -> Result<TextPainter, String> {
        FontRef::try_from_slice(dejavu::sans::regular())
            .map(|font| TextPainter { font })
            .map_err(|error| format!("the embedded font: {error}"))
    }

    /// The advance width of `text` at `size` pixels.
    pub(crate) fn width(&self, size: f32, text: &str) -> f32 {
        let font = self.font.as_scaled(PxScale::from(size));
        let mut width = 0.0;
        let mut previous = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                width += font.kern(previous, id);
            }
            width += font.h_advance(id);
            previous = Some(id);
        }
        width
    }

    pub(crate) fn paint(&self, buffer: &mut [u8], width: u32, height: u32, label: &Label) {
        let scale = PxScale::from(label.size);
        let font = self.font.as_scaled(scale);
        let text_width = self.width(label.size, &label.text);
        let mut caret = match label.align {
            Align::Left => label.x as f32,
            Align::Centre => label.x as f32 - text_width / 2.0,
            Align::Right => label.x as f32 - text_width,
        };
        let baseline = label.y as f32 + font.ascent();
        let mut previous = None;
        for c in label.text.chars() {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                caret += font.kern(previous, id);
            }
            previous = Some(id);
            let glyph = id.with_scale_and_position(scale, point(caret, baseline));
            caret += font.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let x = bounds.min.x as i64 + i64::from(gx);
                let y = bounds.min.y as i64 + i64::from(gy);
                if x < 0 || y < 0 || x >= i64::from(width) || y >= i64::from(height) {
                    return;
                }
                let at = ((y as usize) * width as usize + x as usize) * 3;
                let coverage = coverage.clamp(0.0, 1.0);
                for channel in buffer.iter_mut().skip(at).take(3) {
                    // Black text over whatever is there.
                    *channel = (f32::from(*channel) * (1.0 - coverage)).round() as u8;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_darkens_pixels_where_it_is_painted() {
        let painter = TextPainter::new().unwrap();
        assert!(painter.width(20.0, "99.9%") > 30.0);
        let (width, height) = (120u32, 40u32);
        let mut buffer = vec![255u8; (width * height * 3) as usize];
        painter.paint(
            &mut buffer,
            width,
            height,
            &Label {
                x: 60,
                y: 5,
                size: 20.0,
                align: Align::Centre,
                text: "µs 99%".to_string(),
            },
        );
        let dark = buffer.iter().filter(|&&byte| byte < 128).count();
        assert!(dark > 50, "{dark} dark bytes");
    }
}
