//! Drawing: turns a [`Screen`] and a [`StatusBar`] into pixels on any embedded-graphics
//! `DrawTarget<Color = Rgb565>`, with a layout taken from the target's size class (one row of
//! spacing, faces and digits per class) and its orientation.
//!
//! Drawing is a pure function of (screen, status bar, size, locale): no clock, no I/O, no state.
//! [`Renderer`] adds the only memory the UI has, the last frame, so it can redraw just the status
//! bar when only the clock moved and report the damaged rectangles a display must flush.

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{
    Arc, Circle, CornerRadii, Line, PrimitiveStyle, PrimitiveStyleBuilder, Rectangle,
    RoundedRectangle,
};
use u8g2_fonts::FontRenderer;

use super::fonts::*;
use super::frame::{Frame, damage, rgb};
use super::model::*;
use super::text::{self, T};

// Colours: a light background for daylight counters, one strong colour per outcome.
pub(crate) const BG: Rgb565 = rgb(245, 246, 248);
pub(crate) const FG: Rgb565 = rgb(17, 24, 39);
pub(crate) const MUTED: Rgb565 = rgb(100, 108, 120);
pub(crate) const BAR_BG: Rgb565 = rgb(31, 41, 55);
pub(crate) const BAR_FG: Rgb565 = rgb(243, 244, 246);
pub(crate) const GREEN: Rgb565 = rgb(22, 163, 74);
pub(crate) const RED: Rgb565 = rgb(220, 38, 38);
pub(crate) const AMBER: Rgb565 = rgb(217, 119, 6);
pub(crate) const BLUE: Rgb565 = rgb(37, 99, 235);
pub(crate) const BANNER_BG: Rgb565 = rgb(185, 28, 28);
pub(crate) const BOX_BG: Rgb565 = rgb(255, 255, 255);
pub(crate) const BOX_LINE: Rgb565 = rgb(156, 163, 175);
/// Words and marks drawn on a strong colour (the offline banner, the icons' discs).
pub(crate) const ON_COLOUR: Rgb565 = rgb(255, 255, 255);

/// The smallest and largest sizes a layout is computed for.
pub const MIN_SIZE: (u32, u32) = (160, 120);
pub const MAX_SIZE: (u32, u32) = (1920, 1920);

/// Size class, from the shorter side: 240 → S, 320 → M, 480 and up → L.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Class {
    S,
    M,
    L,
}

// Font chains, named by what they hold. Chinese chains fall back to Helvetica for the Latin-1
// signs WenQuanYi lacks (e.g. ¥); the others fall back to WenQuanYi for Chinese names.
static ZH_12: [&FontRenderer; 2] = [&WQY12, &HELV_R10];
static ZH_16: [&FontRenderer; 2] = [&WQY16, &HELV_R12];
static EN_R10: [&FontRenderer; 2] = [&HELV_R10, &WQY12];
static EN_R12: [&FontRenderer; 2] = [&HELV_R12, &WQY16];
static EN_R14: [&FontRenderer; 2] = [&HELV_R14, &WQY16];
static EN_B14: [&FontRenderer; 2] = [&HELV_B14, &WQY16];
static EN_B18: [&FontRenderer; 2] = [&HELV_B18, &WQY16];
static EN_B24: [&FontRenderer; 2] = [&HELV_B24, &WQY16];
static DIGITS_24: [&FontRenderer; 2] = [&LOGISOSO24, &WQY16];
static DIGITS_32: [&FontRenderer; 2] = [&LOGISOSO32, &WQY16];
static DIGITS_42: [&FontRenderer; 2] = [&LOGISOSO42, &WQY16];
static DIGITS_58: [&FontRenderer; 2] = [&LOGISOSO58, &WQY16];

/// The four text faces of a layout, smallest first.
#[derive(Clone, Copy)]
struct Faces {
    small: Face,
    body: Face,
    strong: Face,
    title: Face,
}

/// What one size class sets (one row per [`Class`]): spacing, the faces for each language, and
/// the amount digits.
struct ClassLayout {
    pad: u32,
    status_h: u32,
    icon: u32,
    zh: Faces,
    en: Faces,
    /// Landscape, then portrait: portrait screens are narrow for their class, so their digits
    /// are one step smaller.
    amount: [Face; 2],
}

// The CJK fonts stop at 16 px: Chinese titles are WenQuanYi 16 drawn at twice the size.
const ZH_FACES: Faces = Faces {
    small: Face::new(&ZH_16, 1),
    body: Face::new(&ZH_16, 1),
    strong: Face::new(&ZH_16, 1),
    title: Face::new(&ZH_16, 2),
};

static CLASS_S: ClassLayout = ClassLayout {
    pad: 8,
    status_h: 22,
    icon: 40,
    zh: Faces {
        small: Face::new(&ZH_12, 1),
        ..ZH_FACES
    },
    en: Faces {
        small: Face::new(&EN_R10, 1),
        body: Face::new(&EN_R12, 1),
        strong: Face::new(&EN_B14, 1),
        title: Face::new(&EN_B18, 1),
    },
    amount: [Face::new(&DIGITS_24, 1), Face::new(&DIGITS_24, 1)],
};

// Medium and large screens use the same English faces; only spacing and digits grow.
const EN_FACES_ML: Faces = Faces {
    small: Face::new(&EN_R12, 1),
    body: Face::new(&EN_R14, 1),
    strong: Face::new(&EN_B14, 1),
    title: Face::new(&EN_B24, 1),
};

static CLASS_M: ClassLayout = ClassLayout {
    pad: 12,
    status_h: 28,
    icon: 56,
    zh: ZH_FACES,
    en: EN_FACES_ML,
    amount: [Face::new(&DIGITS_42, 1), Face::new(&DIGITS_32, 1)],
};

static CLASS_L: ClassLayout = ClassLayout {
    pad: 16,
    status_h: 36,
    icon: 80,
    zh: ZH_FACES,
    en: EN_FACES_ML,
    amount: [Face::new(&DIGITS_58, 1), Face::new(&DIGITS_42, 1)],
};

/// Everything about where things go for one size, orientation and locale.
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    pub w: u32,
    pub h: u32,
    pub portrait: bool,
    #[cfg_attr(not(test), allow(dead_code))]
    pub class: Class,
    pub locale: Locale,
    pub pad: u32,
    pub status_h: u32,
    pub small: Face,
    pub body: Face,
    pub strong: Face,
    pub title: Face,
    pub amount: Face,
    pub icon: u32,
}

impl Layout {
    pub fn new(size: (u32, u32), locale: Locale) -> Layout {
        let (w, h) = size;
        let short = w.min(h);
        let class = if short < 300 {
            Class::S
        } else if short < 420 {
            Class::M
        } else {
            Class::L
        };
        let portrait = h > w;
        let row = match class {
            Class::S => &CLASS_S,
            Class::M => &CLASS_M,
            Class::L => &CLASS_L,
        };
        let faces = match locale {
            Locale::Zh => row.zh,
            Locale::En => row.en,
        };
        Layout {
            w,
            h,
            portrait,
            class,
            locale,
            pad: row.pad,
            status_h: row.status_h,
            small: faces.small,
            body: faces.body,
            strong: faces.strong,
            title: faces.title,
            amount: row.amount[usize::from(portrait)],
            icon: row.icon,
        }
    }

    fn t(&self, t: &T) -> &'static str {
        t.get(self.locale)
    }

    pub fn status_rect(&self) -> Rectangle {
        Rectangle::new(Point::zero(), Size::new(self.w, self.status_h.min(self.h)))
    }
}

/// Checks that a size can be laid out.
pub fn check_size(size: (u32, u32)) -> Result<(), super::UiError> {
    let (w, h) = size;
    if w < MIN_SIZE.0 || h < MIN_SIZE.1 || w > MAX_SIZE.0 || h > MAX_SIZE.1 {
        return Err(super::UiError::BadSize(format!(
            "{w}x{h} is outside {}x{}..{}x{}",
            MIN_SIZE.0, MIN_SIZE.1, MAX_SIZE.0, MAX_SIZE.1
        )));
    }
    Ok(())
}

/// Draws the whole screen: background, status bar, offline banner when offline, and the body.
pub fn draw_screen<D>(
    d: &mut D,
    screen: &Screen,
    status: &StatusBar,
    locale: Locale,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let size = d.bounding_box().size;
    let lay = Layout::new((size.width, size.height), locale);
    d.clear(BG)?;
    draw_status_bar(d, &lay, status)?;
    let mut top = lay.status_h;
    if !status.online {
        top += draw_offline_banner(d, &lay, top)?;
    }
    let body = Rectangle::new(
        Point::new(0, top as i32),
        Size::new(lay.w, lay.h.saturating_sub(top)),
    );
    draw_body(d, &lay, body, screen, status)
}

/// Draws the status bar alone (used when only the time or the unsettled count changed).
pub(crate) fn draw_status_bar<D>(
    d: &mut D,
    lay: &Layout,
    status: &StatusBar,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let r = lay.status_rect();
    d.fill_solid(&r, BAR_BG)?;
    let m = lay.small.metrics();
    let base = ((lay.status_h + m.ascent).saturating_sub(m.descent) / 2) as i32;
    let pad = lay.pad as i32;
    // Right side, drawn right to left: time, network, unsettled count.
    let mut x = lay.w as i32 - pad;
    x -= lay
        .small
        .draw(d, &status.time, x, base, Align::Right, BAR_FG) as i32
        + pad;
    let (net, net_color) = if status.online {
        (lay.t(&text::ONLINE), GREEN)
    } else {
        (lay.t(&text::OFFLINE), RED)
    };
    x -= lay.small.draw(d, net, x, base, Align::Right, BAR_FG) as i32;
    x -= dot_side(&m) as i32 + 4;
    draw_dot(d, &m, x, base, net_color)?;
    x -= pad;
    if status.unsettled > 0 {
        let s = text::unsettled_short(status.unsettled, lay.locale);
        x -= lay
            .small
            .draw(d, &s, x, base, Align::Right, rgb(251, 191, 36)) as i32
            + pad;
    }
    let room = (x - pad).max(0) as u32;
    let name = ellipsize(&lay.small, &status.merchant, room);
    lay.small.draw(d, &name, pad, base, Align::Left, BAR_FG);
    Ok(())
}

/// Side of the coloured dot that stands before a line of small text of metrics `m` (the
/// network state in the status bar, each diagnostics row).
fn dot_side(m: &VMetrics) -> u32 {
    (m.ascent / 2).max(6)
}

/// Draws that dot with its left edge at `x`, centred on the middle of the capitals of the line
/// whose baseline is `base`; returns its side.
fn draw_dot<D>(d: &mut D, m: &VMetrics, x: i32, base: i32, color: Rgb565) -> Result<u32, D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let side = dot_side(m);
    Circle::new(
        Point::new(x, base - m.ascent as i32 / 2 - side as i32 / 2),
        side,
    )
    .into_styled(PrimitiveStyle::with_fill(color))
    .draw(d)?;
    Ok(side)
}

/// Draws the red offline banner below the status bar; returns its height.
fn draw_offline_banner<D>(d: &mut D, lay: &Layout, top: u32) -> Result<u32, D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let lines = lay.small.wrap(
        lay.t(&text::OFFLINE_BANNER),
        lay.w.saturating_sub(2 * lay.pad),
    );
    let h = text_height(&lay.small, lines.len()) + lay.pad;
    d.fill_solid(
        &Rectangle::new(Point::new(0, top as i32), Size::new(lay.w, h)),
        BANNER_BG,
    )?;
    let y = (top + lay.pad / 2) as i32;
    draw_lines(d, &lay.small, &lines, lay.w as i32 / 2, y, ON_COLOUR);
    Ok(h)
}

/// Shortens text with "…" so it fits `max` pixels.
pub(crate) fn ellipsize(face: &Face, text: &str, max: u32) -> String {
    if face.width(text) <= max {
        return text.to_string();
    }
    let mut s: String = text.to_string();
    while !s.is_empty() {
        s.pop();
        let candidate = format!("{s}…");
        if face.width(&candidate) <= max {
            return candidate;
        }
    }
    String::new()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Icon {
    Check,
    Cross,
    Warn,
    Scan,
    Face,
    Phone,
    Dots,
    Undo,
    Clock,
}

/// One piece of a screen's body, stacked top to bottom.
enum Block {
    Icon(Icon, Rgb565),
    Title(String, Rgb565),
    Amount(String, Rgb565),
    Text(String, Rgb565),
    Strong(String, Rgb565),
    Input(String, bool),
    Qr(String),
    Table(Vec<DiagItem>),
    Steps(usize, usize),
    Gap(u32),
}

struct Body {
    blocks: Vec<Block>,
    footer: Option<String>,
    /// Diagnostics read top-down; everything else is centred vertically.
    top_aligned: bool,
}

fn amount_text(fen: u64) -> String {
    format_yuan(fen)
}

/// The box with the amount the cashier is typing (a sale's or a refund's): only what can be
/// shown of the input, behind the yuan sign, in the amount digits.
fn amount_input(input: &str) -> Block {
    Block::Input(format!("¥{}", sanitize_amount_input(input)), true)
}

fn build_body(lay: &Layout, screen: &Screen, status: &StatusBar) -> Body {
    use Block as B;
    let l = lay.locale;
    let s = |t: &T| t.get(l).to_string();
    let mut footer = None;
    let mut top_aligned = false;
    let blocks = match screen {
        Screen::Idle => {
            footer = Some(s(&text::IDLE_HINT));
            let (net, net_c) = if status.online {
                (s(&text::NETWORK_OK), GREEN)
            } else {
                (s(&text::NETWORK_DOWN), RED)
            };
            let (unsettled, unsettled_c) = if status.unsettled > 0 {
                (text::unsettled(status.unsettled, l), AMBER)
            } else {
                (s(&text::ALL_SETTLED), MUTED)
            };
            vec![
                B::Title(status.merchant.clone(), FG),
                B::Gap(lay.pad / 2),
                B::Amount(status.time.clone(), FG),
                B::Text(s(&text::WELCOME), MUTED),
                B::Gap(lay.pad),
                B::Strong(net, net_c),
                B::Text(unsettled, unsettled_c),
            ]
        }
        Screen::AmountEntry { input } => {
            footer = Some(s(&text::ENTER_AMOUNT_HINT));
            vec![
                B::Title(s(&text::ENTER_AMOUNT), FG),
                B::Gap(lay.pad),
                amount_input(input),
            ]
        }
        Screen::ShowCode {
            amount_fen,
            seconds_left,
        } => {
            footer = Some(s(&text::CANCEL_HINT));
            vec![
                B::Icon(Icon::Scan, BLUE),
                B::Title(s(&text::SHOW_CODE), FG),
                B::Amount(amount_text(*amount_fen), FG),
                B::Text(s(&text::SHOW_CODE_HINT), MUTED),
                B::Strong(text::seconds_left(*seconds_left, l), BLUE),
            ]
        }
        Screen::Face { amount_fen, step } => {
            if *step != FaceStep::Paying {
                footer = Some(s(&text::CANCEL_HINT));
            }
            let (title, hint) = text::face_step(*step);
            vec![
                B::Text(
                    format!(
                        "{} · {}",
                        s(&text::FACE_TITLE),
                        text::step_of(step.index(), FaceStep::ALL.len(), l)
                    ),
                    MUTED,
                ),
                B::Icon(Icon::Face, BLUE),
                B::Title(s(&title), FG),
                B::Amount(amount_text(*amount_fen), FG),
                B::Text(s(&hint), MUTED),
                B::Steps(step.index(), FaceStep::ALL.len()),
            ]
        }
        Screen::Processing { amount_fen } => vec![
            B::Icon(Icon::Dots, BLUE),
            B::Title(s(&text::PROCESSING), FG),
            B::Amount(amount_text(*amount_fen), FG),
            B::Text(s(&text::PROCESSING_HINT), MUTED),
        ],
        Screen::CustomerConfirming {
            amount_fen,
            seconds_left,
        } => vec![
            B::Icon(Icon::Phone, AMBER),
            B::Title(s(&text::CONFIRMING), FG),
            B::Amount(amount_text(*amount_fen), FG),
            B::Text(s(&text::CONFIRMING_HINT), MUTED),
            B::Strong(text::seconds_left(*seconds_left, l), AMBER),
        ],
        Screen::Paid { amount_fen, wallet } => vec![
            B::Icon(Icon::Check, GREEN),
            B::Title(s(&text::PAID), GREEN),
            B::Amount(amount_text(*amount_fen), FG),
            B::Strong(s(&text::wallet(*wallet)), MUTED),
        ],
        Screen::Declined { amount_fen, reason } => vec![
            B::Icon(Icon::Cross, RED),
            B::Title(s(&text::DECLINED), RED),
            B::Amount(amount_text(*amount_fen), FG),
            B::Strong(text::decline_reason(reason, l), FG),
            // A refused contract charge already says what to do next (pay with a code), and
            // is met offline, under the banner: the short hint keeps it on small screens.
            B::Text(
                if matches!(reason, DeclineReason::ContractRefused(_)) {
                    s(&text::CANCELLED_HINT)
                } else {
                    s(&text::DECLINED_HINT)
                },
                MUTED,
            ),
        ],
        Screen::Uncertain { amount_fen } => vec![
            B::Icon(Icon::Warn, AMBER),
            B::Title(s(&text::UNCERTAIN_WARN), AMBER),
            B::Amount(amount_text(*amount_fen), FG),
            B::Strong(s(&text::UNCERTAIN), FG),
            B::Text(s(&text::UNCERTAIN_HINT), MUTED),
        ],
        // Calm blue, not an outcome colour: the goods may go, the money follows later.
        Screen::AcceptedOffline { amount_fen } => vec![
            B::Icon(Icon::Clock, BLUE),
            B::Title(s(&text::ACCEPTED_OFFLINE), BLUE),
            B::Amount(amount_text(*amount_fen), FG),
            B::Strong(s(&text::ACCEPTED_OFFLINE_WHEN), FG),
            B::Text(s(&text::ACCEPTED_OFFLINE_HINT), MUTED),
        ],
        Screen::Reversed {
            amount_fen,
            refunded,
        } => vec![
            B::Icon(Icon::Undo, MUTED),
            B::Title(s(&text::CANCELLED), FG),
            B::Amount(amount_text(*amount_fen), MUTED),
            B::Text(
                if *refunded {
                    s(&text::REVERSED_REFUNDED)
                } else {
                    s(&text::CANCELLED_HINT)
                },
                MUTED,
            ),
        ],
        Screen::Refunded { refund_fen } => vec![
            B::Icon(Icon::Check, GREEN),
            B::Title(s(&text::REFUNDED), GREEN),
            B::Amount(amount_text(*refund_fen), FG),
            B::Text(s(&text::REFUNDED_HINT), MUTED),
        ],
        Screen::QrToScan {
            code_url,
            amount_fen,
            seconds_left,
        } => {
            footer = Some(s(&text::SCAN_QR_HINT));
            vec![
                B::Title(s(&text::SCAN_QR), FG),
                B::Qr(code_url.clone()),
                B::Amount(amount_text(*amount_fen), FG),
                B::Strong(text::seconds_left(*seconds_left, l), BLUE),
            ]
        }
        Screen::RefundFlow(step) => {
            let order_line = |o: &str| format!("{}: {}", s(&text::ORDER), o);
            match step {
                RefundStep::EnterOrder { input } => {
                    footer = Some(s(&text::CANCEL_HINT));
                    vec![
                        B::Title(s(&text::REFUND), FG),
                        B::Text(s(&text::REFUND_ENTER_ORDER), MUTED),
                        B::Gap(lay.pad / 2),
                        B::Input(
                            input.chars().filter(|c| !c.is_control()).take(64).collect(),
                            false,
                        ),
                    ]
                }
                RefundStep::EnterAmount {
                    order,
                    refundable_fen,
                    input,
                } => {
                    footer = Some(s(&text::CANCEL_HINT));
                    vec![
                        B::Title(s(&text::REFUND_ENTER_AMOUNT), FG),
                        B::Text(order_line(order), MUTED),
                        B::Text(
                            format!("{}: {}", s(&text::REFUNDABLE), amount_text(*refundable_fen)),
                            MUTED,
                        ),
                        B::Gap(lay.pad / 2),
                        amount_input(input),
                    ]
                }
                RefundStep::Confirm { order, refund_fen } => {
                    footer = Some(s(&text::REFUND_CONFIRM_HINT));
                    vec![
                        B::Icon(Icon::Undo, AMBER),
                        B::Title(s(&text::REFUND_CONFIRM), FG),
                        B::Amount(amount_text(*refund_fen), FG),
                        B::Text(order_line(order), MUTED),
                    ]
                }
                RefundStep::Processing { order, refund_fen } => vec![
                    B::Icon(Icon::Dots, BLUE),
                    B::Title(s(&text::REFUND_PROCESSING), FG),
                    B::Amount(amount_text(*refund_fen), FG),
                    B::Text(order_line(order), MUTED),
                ],
                RefundStep::Failed { order, message } => {
                    footer = Some(s(&text::CANCEL_HINT));
                    vec![
                        B::Icon(Icon::Cross, RED),
                        B::Title(s(&text::REFUND_FAILED), RED),
                        B::Strong(message.clone(), FG),
                        B::Text(order_line(order), MUTED),
                    ]
                }
            }
        }
        Screen::Diagnostics { items } => {
            top_aligned = true;
            footer = Some(s(&text::DIAG_HINT));
            vec![
                B::Title(s(&text::DIAGNOSTICS), FG),
                B::Gap(lay.pad / 2),
                B::Table(items.clone()),
            ]
        }
    };
    Body {
        blocks,
        footer,
        top_aligned,
    }
}

/// Lines of a wrapped text block, at most `max_lines` (the last one ellipsized if cut).
fn wrapped(face: &Face, text: &str, width: u32, max_lines: usize) -> Vec<String> {
    let mut lines = face.wrap(text, width);
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            *last = ellipsize(face, &format!("{last}…"), width);
        }
    }
    lines
}

/// Distance from one line's top to the next in a block of wrapped text.
fn line_pitch(m: &VMetrics) -> u32 {
    m.line_height() + 2
}

fn text_height(face: &Face, lines: usize) -> u32 {
    lines as u32 * line_pitch(&face.metrics())
}

/// A block measured at a width: its height (a QR code's is 0: it takes what is left) and, for
/// words, the face and the lines they wrap into. The stack is drawn from these same figures,
/// so what is centred is exactly what is drawn.
struct Measured {
    height: u32,
    words: Option<(Face, Vec<String>)>,
}

fn measure(lay: &Layout, b: &Block, width: u32) -> Measured {
    // Words: their face, at most how many lines (the last one cut with "…"), space below.
    let words = |t: &str, face: Face, max_lines: usize, below: u32| {
        let lines = wrapped(&face, t, width, max_lines);
        Measured {
            height: text_height(&face, lines.len()) + below,
            words: Some((face, lines)),
        }
    };
    let height = match b {
        Block::Title(t, _) => return words(t, lay.title, 2, lay.pad / 2),
        Block::Text(t, _) => return words(t, lay.body, 3, 0),
        Block::Strong(t, _) => return words(t, lay.strong, 3, 0),
        Block::Icon(..) => lay.icon + lay.pad / 2,
        Block::Amount(t, _) => amount_face(lay, t, width).metrics().line_height() + lay.pad / 2,
        Block::Input(..) => input_height(lay) + lay.pad,
        Block::Qr(_) => 0,
        Block::Table(items) => items.len() as u32 * table_row_height(lay),
        Block::Steps(..) => lay.pad + 8,
        Block::Gap(g) => *g,
    };
    Measured {
        height,
        words: None,
    }
}

/// The amount face, or the body face when the amount would not fit the width.
fn amount_face(lay: &Layout, t: &str, width: u32) -> Face {
    if amount_width(&lay.amount, t) <= width {
        lay.amount
    } else {
        lay.title
    }
}

/// Width of the yuan sign drawn for digits of height `h`.
fn yuan_sign_width(h: u32) -> u32 {
    h * 55 / 100
}

/// Width of the yuan sign drawn for digits of height `h`, including the gap after it.
fn yuan_width(h: u32) -> u32 {
    yuan_sign_width(h) + (h / 8).max(2)
}

/// Width of an amount text whose leading '¥' is drawn as a sign matching the digits.
fn amount_width(face: &Face, t: &str) -> u32 {
    match t.strip_prefix('¥') {
        Some(rest) => yuan_width(face.digit_height()) + face.width(rest),
        None => face.width(t),
    }
}

/// Draws an amount. The digit fonts have no '¥' (and the CJK fonts only a 16 px one), so the
/// sign is drawn with lines at the digits' height and stroke.
fn draw_amount<D>(
    d: &mut D,
    face: &Face,
    t: &str,
    x: i32,
    base: i32,
    align: Align,
    c: Rgb565,
) -> Result<u32, D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let Some(rest) = t.strip_prefix('¥') else {
        return Ok(face.draw(d, t, x, base, align, c));
    };
    let total = amount_width(face, t) as i32;
    let left = align.start(x, total);
    let h = face.digit_height() as i32;
    let w = yuan_sign_width(h as u32) as i32;
    let stroke = (h / 9).max(1) as u32;
    let style = PrimitiveStyle::with_stroke(c, stroke);
    let line = |a: Point, b: Point| Line::new(a, b).into_styled(style);
    let s = stroke as i32;
    let top = base - h + s / 2;
    // A Y of three strokes meeting at `mid`, crossed by two bars.
    let mid = Point::new(left + w / 2, base - h * 45 / 100);
    line(Point::new(left + s / 2, top), mid).draw(d)?;
    line(Point::new(left + w - s / 2, top), mid).draw(d)?;
    line(mid, Point::new(mid.x, base - s / 2)).draw(d)?;
    for fy in [40, 20] {
        let yy = base - h * fy / 100;
        line(
            Point::new(left + w * 12 / 100, yy),
            Point::new(left + w * 88 / 100, yy),
        )
        .draw(d)?;
    }
    face.draw(
        d,
        rest,
        left + yuan_width(h as u32) as i32,
        base,
        Align::Left,
        c,
    );
    Ok(total as u32)
}

/// Height of the input box (the space below it is one more `pad`).
fn input_height(lay: &Layout) -> u32 {
    lay.amount.metrics().line_height() + lay.pad
}

fn table_row_height(lay: &Layout) -> u32 {
    lay.small.metrics().line_height() + lay.pad / 2 + 2
}

fn draw_body<D>(
    d: &mut D,
    lay: &Layout,
    area: Rectangle,
    screen: &Screen,
    status: &StatusBar,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let body = build_body(lay, screen, status);
    let pad = lay.pad;
    let mut area = area;
    // Footer: a muted hint along the bottom edge.
    if let Some(f) = &body.footer {
        let lines = wrapped(&lay.small, f, lay.w.saturating_sub(2 * pad), 2);
        let h = text_height(&lay.small, lines.len()) + pad;
        let top = (area.top_left.y as u32 + area.size.height).saturating_sub(h);
        Line::new(
            Point::new(pad as i32, top as i32),
            Point::new((lay.w - pad) as i32, top as i32),
        )
        .into_styled(PrimitiveStyle::with_stroke(rgb(220, 223, 228), 1))
        .draw(d)?;
        let y = (top + pad / 2) as i32;
        draw_lines(d, &lay.small, &lines, lay.w as i32 / 2, y, MUTED);
        area.size.height = top.saturating_sub(area.top_left.y as u32);
    }
    let inner = Rectangle::new(
        area.top_left + Point::new(pad as i32, pad as i32 / 2),
        Size::new(
            area.size.width.saturating_sub(2 * pad),
            area.size.height.saturating_sub(pad),
        ),
    );
    // A landscape QR screen puts the code on the left and the words on the right.
    let has_qr = body.blocks.iter().any(|b| matches!(b, Block::Qr(_)));
    if has_qr && !lay.portrait {
        let qr_side = inner.size.height.min(inner.size.width / 2);
        let qr_area = Rectangle::new(
            inner.top_left + Point::new(0, (inner.size.height - qr_side) as i32 / 2),
            Size::new(qr_side, qr_side),
        );
        let url = body.blocks.iter().find_map(|b| {
            if let Block::Qr(u) = b {
                Some(u.clone())
            } else {
                None
            }
        });
        draw_qr_or_error(d, lay, qr_area, url.as_deref().unwrap_or(""))?;
        let right = Rectangle::new(
            inner.top_left + Point::new((qr_side + pad) as i32, 0),
            Size::new(
                inner.size.width.saturating_sub(qr_side + pad),
                inner.size.height,
            ),
        );
        let rest: Vec<Block> = body
            .blocks
            .into_iter()
            .filter(|b| !matches!(b, Block::Qr(_)))
            .collect();
        return draw_stack(d, lay, right, &rest, false);
    }
    draw_stack(d, lay, inner, &body.blocks, body.top_aligned)
}

fn draw_stack<D>(
    d: &mut D,
    lay: &Layout,
    area: Rectangle,
    blocks: &[Block],
    top_aligned: bool,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let width = area.size.width;
    let measured: Vec<Measured> = blocks.iter().map(|b| measure(lay, b, width)).collect();
    let fixed: u32 = measured.iter().map(|m| m.height).sum();
    let qr_count = blocks.iter().filter(|b| matches!(b, Block::Qr(_))).count() as u32;
    let qr_side = area
        .size
        .height
        .saturating_sub(fixed + lay.pad)
        .checked_div(qr_count)
        .map_or(0, |s| s.min(width).max(lay.icon));
    let total = fixed + qr_count * (qr_side + lay.pad);
    let mut y = area.top_left.y
        + if top_aligned {
            0
        } else {
            (area.size.height.saturating_sub(total) / 2) as i32
        };
    let cx = area.top_left.x + width as i32 / 2;
    for (b, measured) in blocks.iter().zip(&measured) {
        match b {
            Block::Icon(kind, color) => {
                draw_icon(
                    d,
                    *kind,
                    Point::new(cx - lay.icon as i32 / 2, y),
                    lay.icon,
                    *color,
                )?;
            }
            Block::Title(_, c) | Block::Text(_, c) | Block::Strong(_, c) => {
                if let Some((face, lines)) = &measured.words {
                    draw_lines(d, face, lines, cx, y, *c);
                }
            }
            Block::Amount(t, c) => {
                let f = amount_face(lay, t, width);
                let ascent = f.metrics().ascent as i32;
                draw_amount(d, &f, t, cx, y + ascent, Align::Center, *c)?;
            }
            Block::Input(t, big) => {
                let face = if *big { lay.amount } else { lay.title };
                let h = input_height(lay);
                let bw = width.min(lay.w * 3 / 4);
                let r = Rectangle::new(Point::new(cx - bw as i32 / 2, y), Size::new(bw, h));
                RoundedRectangle::new(r, CornerRadii::new(Size::new(lay.pad / 2, lay.pad / 2)))
                    .into_styled(
                        PrimitiveStyleBuilder::new()
                            .fill_color(BOX_BG)
                            .stroke_color(BOX_LINE)
                            .stroke_width(2)
                            .build(),
                    )
                    .draw(d)?;
                let room = bw.saturating_sub(2 * lay.pad + 6);
                // Keep the end of a long input visible: that is where the cashier is typing.
                let mut shown: String = t.clone();
                while amount_width(&face, &shown) > room && !shown.is_empty() {
                    shown.remove(0);
                }
                let fm = face.metrics();
                let base = y + ((h + fm.ascent).saturating_sub(fm.descent) / 2) as i32;
                let right = r.top_left.x + bw as i32 - lay.pad as i32 - 6;
                draw_amount(d, &face, &shown, right, base, Align::Right, FG)?;
                // The caret.
                Rectangle::new(
                    Point::new(right + 3, y + lay.pad as i32 / 2),
                    Size::new(2, h - lay.pad),
                )
                .into_styled(PrimitiveStyle::with_fill(BLUE))
                .draw(d)?;
            }
            Block::Qr(url) => {
                let r = Rectangle::new(
                    Point::new(cx - qr_side as i32 / 2, y),
                    Size::new(qr_side, qr_side),
                );
                draw_qr_or_error(d, lay, r, url)?;
            }
            Block::Table(items) => {
                let rh = table_row_height(lay) as i32;
                let m = lay.small.metrics();
                let label_w = items
                    .iter()
                    .map(|i| lay.small.width(&i.label))
                    .max()
                    .unwrap_or(0)
                    .min(width / 2);
                let x0 = area.top_left.x;
                let bottom = area.top_left.y + area.size.height as i32;
                let mut row = y;
                for item in items {
                    let base = row + m.ascent as i32 + 1;
                    let color = match item.status {
                        DiagStatus::Ok => GREEN,
                        DiagStatus::Warn => AMBER,
                        DiagStatus::Fail => RED,
                        DiagStatus::Info => BOX_LINE,
                    };
                    let dot = draw_dot(d, &m, x0, base, color)?;
                    let lx = x0 + dot as i32 + 6;
                    lay.small.draw(
                        d,
                        &ellipsize(&lay.small, &item.label, label_w),
                        lx,
                        base,
                        Align::Left,
                        MUTED,
                    );
                    let vx = lx + label_w as i32 + lay.pad as i32;
                    let room = (area.top_left.x + width as i32 - vx).max(0) as u32;
                    lay.small.draw(
                        d,
                        &ellipsize(&lay.small, &item.value, room),
                        vx,
                        base,
                        Align::Left,
                        FG,
                    );
                    row += rh;
                    if row + rh > bottom {
                        break;
                    }
                }
            }
            Block::Steps(i, n) => {
                let dot = 8i32;
                let gap = 8i32;
                let total_w = *n as i32 * dot + (*n as i32 - 1) * gap;
                let mut x = cx - total_w / 2;
                for k in 1..=*n {
                    let c = if k <= *i { BLUE } else { BOX_LINE };
                    Circle::new(Point::new(x, y + lay.pad as i32 / 2), dot as u32)
                        .into_styled(PrimitiveStyle::with_fill(c))
                        .draw(d)?;
                    x += dot + gap;
                }
            }
            Block::Gap(_) => {}
        }
        // A QR code takes its share of what is left; every other block what it measured.
        y += match b {
            Block::Qr(_) => qr_side + lay.pad,
            _ => measured.height,
        } as i32;
    }
    Ok(())
}

/// Draws `lines` centred on `cx`, the first one's top at `y` (the banner, the footer and every
/// text block); returns the y below the last line, `y + text_height(face, lines.len())`.
fn draw_lines<D>(
    d: &mut D,
    face: &Face,
    lines: &[String],
    cx: i32,
    mut y: i32,
    color: Rgb565,
) -> i32
where
    D: DrawTarget<Color = Rgb565>,
{
    let m = face.metrics();
    for l in lines {
        face.draw(d, l, cx, y + m.ascent as i32, Align::Center, color);
        y += line_pitch(&m) as i32;
    }
    y
}

fn draw_qr_or_error<D>(d: &mut D, lay: &Layout, r: Rectangle, url: &str) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    match super::qr::draw_qr(d, url, r) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            let c = r.center();
            draw_icon(
                d,
                Icon::Cross,
                Point::new(c.x - lay.icon as i32 / 2, c.y - lay.icon as i32),
                lay.icon,
                RED,
            )?;
            let m = lay.body.metrics();
            lay.body.draw(
                d,
                lay.t(&text::QR_FAILED),
                c.x,
                c.y + (lay.pad + m.ascent) as i32,
                Align::Center,
                RED,
            );
            Ok(())
        }
    }
}

fn draw_icon<D>(
    d: &mut D,
    kind: Icon,
    top_left: Point,
    size: u32,
    color: Rgb565,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let s = size as i32;
    let stroke = (size / 10).max(2);
    // Every mark is white on the disc: outlines at the icon's stroke, or filled spots.
    let outline = PrimitiveStyle::with_stroke(ON_COLOUR, stroke);
    let filled = PrimitiveStyle::with_fill(ON_COLOUR);
    let p = |fx: i32, fy: i32| top_left + Point::new(s * fx / 100, s * fy / 100);
    let line = |a: Point, b: Point| Line::new(a, b).into_styled(outline);
    let spot = |c: Point, diameter: u32| Circle::with_center(c, diameter).into_styled(filled);
    Circle::new(top_left, size)
        .into_styled(PrimitiveStyle::with_fill(color))
        .draw(d)?;
    match kind {
        Icon::Check => {
            line(p(27, 52), p(44, 69)).draw(d)?;
            line(p(44, 69), p(74, 36)).draw(d)?;
        }
        Icon::Cross => {
            line(p(32, 32), p(68, 68)).draw(d)?;
            line(p(68, 32), p(32, 68)).draw(d)?;
        }
        Icon::Warn => {
            line(p(50, 24), p(50, 58)).draw(d)?;
            spot(p(50, 74), stroke + 3).draw(d)?;
        }
        Icon::Scan => {
            // Four corner brackets and a scan line.
            let a = 26;
            let b = 74;
            let k = 14;
            for (x, y, dx, dy) in [(a, a, 1, 1), (b, a, -1, 1), (a, b, 1, -1), (b, b, -1, -1)] {
                line(p(x, y), p(x + dx * k, y)).draw(d)?;
                line(p(x, y), p(x, y + dy * k)).draw(d)?;
            }
            line(p(30, 50), p(70, 50)).draw(d)?;
        }
        Icon::Face => {
            Circle::new(p(28, 24), (size * 44 / 100).max(4))
                .into_styled(outline)
                .draw(d)?;
            spot(p(42, 42), stroke + 1).draw(d)?;
            spot(p(58, 42), stroke + 1).draw(d)?;
            line(p(44, 56), p(56, 56)).draw(d)?;
            line(p(30, 82), p(70, 82)).draw(d)?;
        }
        Icon::Phone => {
            RoundedRectangle::with_equal_corners(
                Rectangle::new(p(34, 20), Size::new(size * 32 / 100, size * 60 / 100)),
                Size::new(size / 16 + 1, size / 16 + 1),
            )
            .into_styled(outline)
            .draw(d)?;
            for fx in [42, 50, 58] {
                spot(p(fx, 50), stroke).draw(d)?;
            }
        }
        Icon::Dots => {
            for fx in [30, 50, 70] {
                spot(p(fx, 50), size / 8).draw(d)?;
            }
        }
        Icon::Undo => {
            Arc::with_center(
                p(50, 54),
                size * 46 / 100,
                Angle::from_degrees(200.0),
                Angle::from_degrees(250.0),
            )
            .into_styled(outline)
            .draw(d)?;
            // Arrow head at the arc's start (left side).
            line(p(28, 46), p(27, 30)).draw(d)?;
            line(p(28, 46), p(42, 42)).draw(d)?;
        }
        Icon::Clock => {
            Circle::with_center(p(50, 50), size * 58 / 100)
                .into_styled(outline)
                .draw(d)?;
            line(p(50, 50), p(50, 31)).draw(d)?;
            line(p(50, 50), p(64, 58)).draw(d)?;
        }
    }
    Ok(())
}

/// Every string a screen shows (status bar, banner, body, footer), for glyph-coverage tests.
#[cfg(test)]
pub(crate) fn all_words(lay: &Layout, screen: &Screen, status: &StatusBar) -> Vec<String> {
    let mut out = vec![
        status.merchant.clone(),
        status.time.clone(),
        lay.t(&text::ONLINE).to_string(),
        lay.t(&text::OFFLINE).to_string(),
        lay.t(&text::OFFLINE_BANNER).to_string(),
        text::unsettled_short(status.unsettled, lay.locale),
    ];
    let body = build_body(lay, screen, status);
    out.extend(body.footer);
    for b in body.blocks {
        match b {
            Block::Title(t, _)
            | Block::Text(t, _)
            | Block::Strong(t, _)
            | Block::Amount(t, _)
            | Block::Input(t, _) => out.push(t),
            Block::Table(items) => {
                for i in items {
                    out.push(i.label);
                    out.push(i.value);
                }
            }
            Block::Icon(..) | Block::Qr(_) | Block::Steps(..) | Block::Gap(_) => {}
        }
    }
    out
}

/// Keeps the last frame so a new screen costs only the rectangles that changed.
pub struct Renderer {
    locale: Locale,
    shown: Frame,
    scratch: Frame,
    last: Option<(Screen, StatusBar)>,
}

impl Renderer {
    /// A renderer for a display of `size` pixels. Fails for sizes no layout exists for.
    pub fn new(size: (u32, u32), locale: Locale) -> Result<Renderer, super::UiError> {
        check_size(size)?;
        Ok(Renderer {
            locale,
            shown: Frame::new(size.0, size.1),
            scratch: Frame::new(size.0, size.1),
            last: None,
        })
    }

    /// The frame as it should be on the display now.
    pub fn frame(&self) -> &Frame {
        &self.shown
    }

    pub fn locale(&self) -> Locale {
        self.locale
    }

    /// Changes the language; the next render redraws everything.
    pub fn set_locale(&mut self, locale: Locale) {
        if locale != self.locale {
            self.locale = locale;
            self.last = None;
        }
    }

    /// Forgets the last frame so the next render reports the whole screen as damaged (after
    /// the display was cleared by someone else, e.g. a console switch).
    pub fn invalidate(&mut self) {
        self.last = None;
        self.shown = Frame::new(self.shown.width(), self.shown.height());
        // A frame of zeroes never equals a drawn frame (the background is not black).
    }

    /// Draws `screen` and returns the rectangles that differ from the previous frame. Nothing
    /// is drawn when neither the screen nor the status bar changed; only the status bar is
    /// drawn when only it changed and the offline banner did not appear or go.
    pub fn render(&mut self, screen: &Screen, status: &StatusBar) -> Vec<Rectangle> {
        let bounds = self.shown.bounds();
        let (region, full) = match &self.last {
            Some((s, st)) if s == screen && st == status => return Vec::new(),
            // The idle body repeats the status bar's facts, so it needs the full path.
            Some((s, st))
                if s == screen && st.online == status.online && *screen != Screen::Idle =>
            {
                let lay = Layout::new((bounds.size.width, bounds.size.height), self.locale);
                let Ok(()) = draw_status_bar(&mut self.scratch, &lay, status);
                (lay.status_rect(), false)
            }
            _ => {
                let Ok(()) = draw_screen(&mut self.scratch, screen, status, self.locale);
                (bounds, true)
            }
        };
        let dirty = damage(&self.shown, &self.scratch, &region);
        for r in &dirty {
            self.shown.copy_rect_from(&self.scratch, r);
        }
        debug_assert!(!full || self.shown == self.scratch);
        self.last = Some((screen.clone(), status.clone()));
        dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The samples' status bar: a Chinese shop name, online, nothing unsettled.
    use crate::ui::sample_status as status;

    fn render(screen: &Screen, st: &StatusBar, size: (u32, u32), l: Locale) -> Frame {
        let mut f = Frame::new(size.0, size.1);
        let Ok(()) = draw_screen(&mut f, screen, st, l);
        f
    }

    #[test]
    fn layout_classes_follow_the_short_side() {
        assert_eq!(Layout::new((320, 240), Locale::Zh).class, Class::S);
        assert_eq!(Layout::new((240, 320), Locale::Zh).class, Class::S);
        assert_eq!(Layout::new((480, 320), Locale::Zh).class, Class::M);
        assert_eq!(Layout::new((800, 480), Locale::En).class, Class::L);
        assert!(Layout::new((480, 800), Locale::En).portrait);
        assert!(check_size((10, 10)).is_err());
        assert!(check_size((320, 240)).is_ok());
    }

    #[test]
    fn drawing_is_deterministic_and_screens_differ() {
        let st = status();
        let paid = |amount_fen, l| {
            let screen = Screen::Paid {
                amount_fen,
                wallet: Wallet::WeChat,
            };
            render(&screen, &st, (320, 240), l)
        };
        let a = paid(1234, Locale::Zh);
        assert_eq!(a, paid(1234, Locale::Zh));
        assert_ne!(a, paid(1235, Locale::Zh));
        assert_ne!(a, paid(1234, Locale::En));
    }

    #[test]
    fn offline_status_adds_a_red_banner() {
        let mut st = status();
        let on = render(&Screen::Idle, &st, (480, 320), Locale::Zh);
        st.online = false;
        let off = render(&Screen::Idle, &st, (480, 320), Locale::Zh);
        let lay = Layout::new((480, 320), Locale::Zh);
        // Just below the status bar, at the left edge: background when online, banner when not.
        assert_eq!(on.get(1, lay.status_h + 2), Some(BG));
        assert_eq!(off.get(1, lay.status_h + 2), Some(BANNER_BG));
    }

    #[test]
    fn unchanged_input_redraws_nothing_and_a_clock_tick_only_the_status_bar() {
        let mut r = Renderer::new((480, 320), Locale::Zh).unwrap_or_else(|e| panic!("{e}"));
        let screen = Screen::ShowCode {
            amount_fen: 100,
            seconds_left: 30,
        };
        let mut st = status();
        let first = r.render(&screen, &st);
        assert_eq!(
            first.len(),
            1,
            "first frame is damaged as a whole: {first:?}"
        );
        assert!(r.render(&screen, &st).is_empty());
        st.time = "14:06".into();
        let tick = r.render(&screen, &st);
        assert!(!tick.is_empty());
        let bar = Layout::new((480, 320), Locale::Zh).status_rect();
        for d in &tick {
            assert!(
                d.top_left.y as u32 + d.size.height <= bar.size.height.div_ceil(16) * 16,
                "{d:?}"
            );
        }
        // The incremental frame equals a full redraw of the same state.
        assert_eq!(*r.frame(), render(&screen, &st, (480, 320), Locale::Zh));
        // A countdown change damages less than the whole screen.
        let next = Screen::ShowCode {
            amount_fen: 100,
            seconds_left: 29,
        };
        let dmg = r.render(&next, &st);
        let area: u32 = dmg.iter().map(|d| d.size.width * d.size.height).sum();
        assert!(
            area > 0 && area < 480 * 320 / 4,
            "damaged {area} px: {dmg:?}"
        );
        assert_eq!(*r.frame(), render(&next, &st, (480, 320), Locale::Zh));
    }

    #[test]
    fn long_merchant_names_are_cut_not_overflowing() {
        let mut st = status();
        st.merchant = "一个名字非常非常非常非常非常非常非常非常非常长的商户有限公司".into();
        st.unsettled = 12;
        let lay = Layout::new((320, 240), Locale::Zh);
        let mut f = Frame::new(320, 240);
        let Ok(()) = draw_status_bar(&mut f, &lay, &st);
        let e = ellipsize(&lay.small, &st.merchant, 100);
        assert!(e.ends_with('…') && lay.small.width(&e) <= 100);
    }

    /// Every refusal of a contract charge and the accepted-offline words are shown whole (no
    /// line cut with "…") and with glyphs, at every snapshot size and in both languages.
    #[test]
    fn contract_charge_texts_fit_every_screen() {
        for &size in crate::ui::SNAPSHOT_SIZES {
            for l in Locale::ALL {
                let lay = Layout::new(size, l);
                let width = lay.w - 2 * lay.pad;
                let mut strong: Vec<String> = ContractRefusal::ALL
                    .iter()
                    .map(|r| text::decline_reason(&DeclineReason::ContractRefused(*r), l))
                    .collect();
                strong.push(lay.t(&text::ACCEPTED_OFFLINE_WHEN).into());
                for t in &strong {
                    assert!(lay.strong.wrap(t, width).len() <= 3, "{size:?} {t}");
                    assert!(lay.strong.covers(t), "{size:?} {t}");
                }
                let hint = lay.t(&text::ACCEPTED_OFFLINE_HINT);
                assert!(lay.body.wrap(hint, width).len() <= 3, "{size:?} {hint}");
                assert!(lay.body.covers(hint) && lay.title.covers(lay.t(&text::ACCEPTED_OFFLINE)));
                // Both screens are met while offline: under the banner, the whole stack fits
                // (nothing drawn past the bottom edge), whichever refusal is shown.
                let mut st = status();
                st.online = false;
                let mut f = Frame::new(size.0, size.1);
                let Ok(banner) = draw_offline_banner(&mut f, &lay, lay.status_h);
                let room = lay.h - lay.status_h - banner - lay.pad;
                let mut screens = vec![Screen::AcceptedOffline { amount_fen: 2850 }];
                screens.extend(ContractRefusal::ALL.iter().map(|r| Screen::Declined {
                    amount_fen: 2850,
                    reason: DeclineReason::ContractRefused(*r),
                }));
                for screen in &screens {
                    let body = build_body(&lay, screen, &st);
                    assert!(body.footer.is_none());
                    let heights: Vec<u32> = body
                        .blocks
                        .iter()
                        .map(|b| measure(&lay, b, width).height)
                        .collect();
                    let used: u32 = heights.iter().sum();
                    assert!(
                        used <= room,
                        "{size:?} {l:?} {screen:?}: {heights:?} > {room}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_qr_data_shows_an_error_instead_of_a_code() {
        let st = status();
        let qr = |code_url: String| {
            let screen = Screen::QrToScan {
                code_url,
                amount_fen: 1,
                seconds_left: 1,
            };
            render(&screen, &st, (320, 240), Locale::Zh)
        };
        let f = qr("x".repeat(5000));
        assert_ne!(f, qr("weixin://wxpay/bizpayurl?pr=abc".into()));
        // Somewhere on the failed screen is the red of the error icon.
        assert!(
            f.pixels()
                .contains(&embedded_graphics::pixelcolor::raw::RawU16::from(RED).into_inner())
        );
    }
}
