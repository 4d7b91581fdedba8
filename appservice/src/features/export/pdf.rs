//! The PDF of an export: A4, a title block (institution, chat, period, when exported), then
//! every message with its time and sender, page numbers at the foot. Text is laid out by
//! parley (shaping, line breaking, fallback to the emoji font) and written by krilla with
//! embedded font subsets; the document is tagged (a paragraph per message, page numbers as
//! artifacts) and says it is German.
//!
//! Fonts: DejaVu Sans (regular and bold, shipped in `appservice/fonts/`, Bitstream Vera
//! licence) for all Latin text with umlauts and ß; emoji from Noto Color Emoji where the
//! system has it (Debian's `fonts-noto-color-emoji`; see docs/operations.md), else they are
//! left to DejaVu, which has few.
//!
//! Rendering runs on a blocking thread and takes the lines page by page from a bounded
//! channel, so the history is never held whole; only the PDF being written grows.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use krilla::color::rgb;
use krilla::geom::Point;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::surface::Surface;
use krilla::tagging::{Artifact, ArtifactType, ContentTag, Identifier, SpanTag, Tag, TagGroup, TagTree};
use krilla::text::{Font, GlyphId, KrillaGlyph};
use krilla::{Document, SerializeSettings};
use parley::fontique::Blob;
use parley::style::{FontFamily, FontWeight, LineHeight, StyleProperty};
use parley::{FontContext, Layout, LayoutContext};

use crate::features::export::{Line, Subject};

const REGULAR: &[u8] = include_bytes!("../../../fonts/DejaVuSans.ttf");
const BOLD: &[u8] = include_bytes!("../../../fonts/DejaVuSans-Bold.ttf");

/// Where systems keep Noto Color Emoji (Debian, Fedora, Arch).
const EMOJI_FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-color-emoji-fonts/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
];

/// The emoji font, read once, if the system has one.
fn emoji_font() -> Option<Arc<Vec<u8>>> {
    static EMOJI: OnceLock<Option<Arc<Vec<u8>>>> = OnceLock::new();
    EMOJI
        .get_or_init(|| {
            let found = EMOJI_FONTS.iter().find_map(|p| std::fs::read(p).ok()).map(Arc::new);
            if found.is_none() {
                tracing::warn!(
                    "no emoji font (fonts-noto-color-emoji): emoji in PDF exports are drawn with DejaVu Sans"
                );
            }
            found
        })
        .clone()
}

// A4 in points, 2 cm margins.
const WIDTH: f32 = 595.28;
const HEIGHT: f32 = 841.89;
const MARGIN: f32 = 56.7;
const CONTENT: f32 = WIDTH - 2.0 * MARGIN;
const FOOT: f32 = 28.0;
const GAP: f32 = 7.0;

/// Laid-out text with what it says (krilla maps glyphs back to it for copying and search).
struct Block {
    text: String,
    layout: Layout<rgb::Color>,
}

struct Typesetter {
    fonts: FontContext,
    layouts: LayoutContext<rgb::Color>,
    families: String,
}

impl Typesetter {
    fn new() -> Self {
        let mut fonts = FontContext::new();
        let mut families = Vec::new();
        for data in [REGULAR.to_vec(), BOLD.to_vec()] {
            for (family, _) in fonts.collection.register_fonts(Blob::new(Arc::new(data)), None) {
                if let Some(name) = fonts.collection.family_name(family) {
                    families.push(name.to_owned());
                }
            }
        }
        if let Some(emoji) = emoji_font() {
            for (family, _) in fonts.collection.register_fonts(Blob::new(emoji), None) {
                if let Some(name) = fonts.collection.family_name(family) {
                    families.push(name.to_owned());
                }
            }
        }
        families.dedup();
        let families = families.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(", ");
        Self { fonts, layouts: LayoutContext::new(), families }
    }

    fn block(&mut self, text: &str, size: f32, bold: bool, color: rgb::Color) -> Block {
        let mut b = self.layouts.ranged_builder(&mut self.fonts, text, 1.0, true);
        b.push_default(StyleProperty::FontFamily(FontFamily::Source(self.families.as_str().into())));
        b.push_default(StyleProperty::FontSize(size));
        b.push_default(StyleProperty::LineHeight(LineHeight::FontSizeRelative(1.3)));
        b.push_default(StyleProperty::Brush(color));
        if bold {
            b.push_default(StyleProperty::FontWeight(FontWeight::BOLD));
        }
        let mut layout = b.build(text);
        layout.break_all_lines(Some(CONTENT));
        Block { text: text.to_owned(), layout }
    }
}

/// Fonts as krilla has them, by parley's font data.
#[derive(Default)]
struct KrillaFonts(HashMap<(u64, u32), Font>);

impl KrillaFonts {
    fn get(&mut self, font: &parley::FontData) -> Option<Font> {
        let key = (font.data.id(), font.index);
        if let Some(f) = self.0.get(&key) {
            return Some(f.clone());
        }
        let data: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(font.data.clone());
        let f = Font::new(data.into(), font.index)?;
        self.0.insert(key, f.clone());
        Some(f)
    }
}

/// Draws lines `from..to` of a block with their top at `top`. Tagged: one span per line,
/// whose identifiers it answers; else inside an artifact the caller opened.
fn draw(
    surface: &mut Surface<'_>,
    fonts: &mut KrillaFonts,
    block: &Block,
    (from, to): (usize, usize),
    top: f32,
    tagged: bool,
) -> Vec<Identifier> {
    let lines: Vec<_> = block.layout.lines().collect();
    let mut ids = Vec::new();
    let Some(first) = lines.get(from) else { return ids };
    let offset = first.metrics().min_coord;
    for line in &lines[from..to.min(lines.len())] {
        let y = top + line.metrics().baseline - offset;
        if tagged {
            ids.push(surface.start_tagged(ContentTag::Span(SpanTag::empty())));
        }
        for item in line.items() {
            let parley::PositionedLayoutItem::GlyphRun(run) = item else { continue };
            let glyph_run = run.run();
            let size = glyph_run.font_size();
            let Some(font) = fonts.get(glyph_run.font()) else { continue };
            let mut glyphs = Vec::new();
            for cluster in glyph_run.visual_clusters() {
                let range = cluster.text_range();
                for g in cluster.glyphs() {
                    let id = GlyphId::new(g.id);
                    glyphs.push(KrillaGlyph::new(
                        id,
                        g.advance / size,
                        g.x / size,
                        g.y / size,
                        0.0,
                        range.clone(),
                        None,
                    ));
                }
            }
            let paint = run.style().brush;
            surface.set_fill(Some(Fill {
                paint: paint.into(),
                opacity: NormalizedF32::ONE,
                rule: Default::default(),
            }));
            surface.draw_glyphs(
                Point::from_xy(MARGIN + run.offset(), y),
                &glyphs,
                font,
                &block.text,
                size,
                false,
            );
        }
        if tagged {
            surface.end_tagged();
        }
    }
    ids
}

/// The top and bottom of lines `from..to`.
fn height(block: &Block, from: usize, to: usize) -> f32 {
    let lines: Vec<_> = block.layout.lines().collect();
    match (lines.get(from), lines.get(to.saturating_sub(1))) {
        (Some(a), Some(b)) => b.metrics().max_coord - a.metrics().min_coord,
        _ => 0.0,
    }
}

/// The PDF of an export, from the lines `rx` hands over page by page.
pub fn render(
    subject: &Subject,
    period: &str,
    exported_at: &str,
    mut rx: tokio::sync::mpsc::Receiver<Vec<Line>>,
) -> Result<Vec<u8>, String> {
    let mut doc = Document::new_with(SerializeSettings { enable_tagging: true, ..Default::default() });
    let mut tree = TagTree::new().with_lang(Some("de-DE".into()));
    let mut ts = Typesetter::new();
    let mut fonts = KrillaFonts::default();
    let black = rgb::Color::new(0, 0, 0);
    let grey = rgb::Color::new(80, 80, 80);

    let mut pending: std::collections::VecDeque<Line> = Default::default();
    let mut title = Some(vec![
        ts.block("Chatverlauf", 18.0, true, black),
        ts.block(&format!("Einrichtung: {}", subject.institution), 10.5, false, black),
        ts.block(&subject.title, 10.5, false, black),
        ts.block(&format!("Zeitraum: {period}"), 10.5, false, black),
        ts.block(&format!("Exportiert am {exported_at}"), 9.0, false, grey),
    ]);
    // The message being set: its header and text, how far it got, its tag group.
    let mut current: Option<(Block, Block, usize, TagGroup)> = None;
    let mut page_no = 0u32;
    let mut count = 0usize;
    loop {
        if current.is_none() && pending.is_empty() && title.is_none() {
            match rx.blocking_recv() {
                Some(page) => {
                    pending.extend(page);
                    continue;
                }
                None if page_no > 0 => break,
                None => {}
            }
        }
        page_no += 1;
        let mut page = doc.start_page_with(PageSettings::from_wh(WIDTH, HEIGHT).ok_or("page size")?);
        let mut surface = page.surface();
        let bottom = HEIGHT - MARGIN - FOOT;
        let mut y = MARGIN;
        if let Some(blocks) = title.take() {
            let mut group = TagGroup::new(Tag::Title);
            for b in &blocks {
                let n = b.layout.lines().count();
                draw(&mut surface, &mut fonts, b, (0, n), y, true).into_iter().for_each(|id| group.push(id));
                y += height(b, 0, n) + 2.0;
            }
            tree.push(group);
            y += 2.0 * GAP;
        }
        loop {
            if current.is_none() {
                let Some(l) = pending.pop_front() else {
                    match rx.blocking_recv() {
                        Some(page) => {
                            pending.extend(page);
                            continue;
                        }
                        None => break,
                    }
                };
                let head = ts.block(
                    &format!("{} {} · {}", l.date, &l.time[..l.time.len().min(5)], l.sender),
                    8.5,
                    true,
                    grey,
                );
                let text = ts.block(if l.text.is_empty() { " " } else { &l.text }, 10.5, false, black);
                current = Some((head, text, 0, TagGroup::new(Tag::P)));
                count += 1;
            }
            let Some((head, text, done, mut group)) = current.take() else { break };
            let total = text.layout.lines().count();
            // The header goes with at least the first line of text.
            let head_h = if done == 0 { height(&head, 0, head.layout.lines().count()) + 1.0 } else { 0.0 };
            let mut fit = done;
            while fit < total && y + head_h + height(&text, done, fit + 1) <= bottom {
                fit += 1;
            }
            if fit == done && y > MARGIN {
                current = Some((head, text, done, group));
                break; // next page
            }
            let fit = fit.max(done + 1); // a line taller than a page still goes somewhere
            if done == 0 {
                let n = head.layout.lines().count();
                draw(&mut surface, &mut fonts, &head, (0, n), y, true)
                    .into_iter()
                    .for_each(|id| group.push(id));
                y += head_h;
            }
            draw(&mut surface, &mut fonts, &text, (done, fit), y, true)
                .into_iter()
                .for_each(|id| group.push(id));
            y += height(&text, done, fit);
            if fit < total {
                current = Some((head, text, fit, group));
                break;
            }
            tree.push(group);
            y += GAP;
        }
        // The page number, an artifact.
        let foot = ts.block(&format!("Seite {page_no}"), 8.5, false, grey);
        surface.start_tagged(ContentTag::Artifact(Artifact::with_kind(ArtifactType::PageNumber)));
        let n = foot.layout.lines().count();
        draw(&mut surface, &mut fonts, &foot, (0, n), HEIGHT - MARGIN - 10.0, false);
        surface.end_tagged();
        surface.finish();
        page.finish();
        if current.is_none() && pending.is_empty() && rx.is_closed() && rx.is_empty() {
            break;
        }
    }
    if count == 0 {
        tracing::debug!("an export without messages");
    }
    doc.set_tag_tree(tree);
    let title = format!("Chatverlauf – {}", subject.title);
    doc.set_metadata(
        krilla::metadata::Metadata::new().title(title).language("de-DE".into()).creator("assisto".into()),
    );
    doc.finish().map_err(|e| format!("{e:?}"))
}
