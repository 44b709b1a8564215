//! Trend plots as inline SVG, made here rather than by a script in the browser: the page
//! works without JavaScript and the same plot is in a saved page. One plot per figure, a
//! line per board over the runs (oldest left), each point with a tooltip (`<title>`).

use maud::{html, Markup};

pub const WIDTH: f64 = 640.0;
pub const HEIGHT: f64 = 200.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// Line colours, one per board in order; a board past the last reuses them (its legend
/// entry still names it).
const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One board's values: (column, value, what the point's tooltip says).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(usize, f64, String)>,
}

/// The value range drawn: the values' own, widened when flat so a constant line sits in
/// the middle rather than on an edge.
fn range(series: &[Series]) -> (f64, f64) {
    let vals = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    }
}

/// Where column `x` of `columns` and value `y` are drawn.
pub fn place(x: usize, columns: usize, y: f64, (lo, hi): (f64, f64)) -> (f64, f64) {
    let w = WIDTH - LEFT - RIGHT;
    let h = HEIGHT - TOP - BOTTOM;
    let px = if columns <= 1 {
        LEFT + w / 2.0
    } else {
        LEFT + w * x as f64 / (columns - 1) as f64
    };
    let py = TOP + h * (1.0 - (y - lo) / (hi - lo));
    (px, py)
}

/// A value as an axis label: short, and integers without decimals.
pub fn tick(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The plot of one figure over `columns` runs; `first` and `last` label the ends of the
/// run axis.
pub fn line_plot(
    figure: &str,
    columns: usize,
    series: &[Series],
    first: &str,
    last: &str,
) -> Markup {
    let r = range(series);
    let (lo, hi) = r;
    let bottom = HEIGHT - BOTTOM;
    let right = WIDTH - RIGHT;
    html! {
        svg.plot xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT)
            viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
            aria-label=(format!("{figure} over the last {columns} runs")) {
            title { (figure) " over the last " (columns) " runs" }
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(bottom) {}
            line.axis x1=(LEFT) y1=(bottom) x2=(right) y2=(bottom) {}
            @for v in [lo, (lo + hi) / 2.0, hi] {
                @let (_, y) = place(0, columns, v, r);
                line.grid x1=(LEFT) y1=(y) x2=(right) y2=(y) {}
                text.tick x=(LEFT - 4.0) y=(y + 4.0) text-anchor="end" { (tick(v)) }
            }
            text.tick x=(LEFT) y=(HEIGHT - 8.0) { (first) }
            text.tick x=(right) y=(HEIGHT - 8.0) text-anchor="end" { (last) }
            @for (i, s) in series.iter().enumerate() {
                @let colour = PALETTE[i % PALETTE.len()];
                @let pts: Vec<String> = s.points.iter().map(|(x, y, _)| {
                    let (px, py) = place(*x, columns, *y, r);
                    format!("{px:.1},{py:.1}")
                }).collect();
                g.series data-board=(s.name) {
                    polyline points=(pts.join(" ")) fill="none" stroke=(colour) stroke-width="2" {}
                    @for (x, y, tip) in &s.points {
                        @let (px, py) = place(*x, columns, *y, r);
                        circle cx=(format!("{px:.1}")) cy=(format!("{py:.1}")) r="3" fill=(colour) {
                            title { (tip) }
                        }
                    }
                    rect x=(right + 10.0) y=(TOP + 16.0 * i as f64) width="10" height="10" fill=(colour) {}
                    text.legend x=(right + 24.0) y=(TOP + 9.0 + 16.0 * i as f64) { (s.name) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
        let at = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        &tag[at..at + tag[at..].find('"').unwrap()]
    }

    /// Every `<name ...>` start tag of the SVG.
    fn tags<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
        svg.match_indices(&format!("<{name} "))
            .map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()])
            .collect()
    }

    #[test]
    fn points_are_placed_by_run_and_value_inside_the_plot_area() {
        let s = vec![
            Series {
                name: "b1".into(),
                points: vec![
                    (0, 10.0, "r1: 10".into()),
                    (1, 20.0, "r2: 20".into()),
                    (3, 15.0, "r4: 15".into()),
                ],
            },
            Series {
                name: "<b2>".into(),
                points: vec![(2, 12.0, "r3: 12".into())],
            },
        ];
        let svg = line_plot("boot_s", 4, &s, "r1", "r4").into_string();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        // Text is escaped: a board name cannot inject markup.
        assert!(svg.contains("&lt;b2&gt;") && !svg.contains("<b2>"), "{svg}");
        let circles = tags(&svg, "circle");
        assert_eq!(circles.len(), 4, "{svg}");
        let xy: Vec<(f64, f64)> = circles
            .iter()
            .map(|c| {
                (
                    attr(c, "cx").parse().unwrap(),
                    attr(c, "cy").parse().unwrap(),
                )
            })
            .collect();
        for (x, y) in &xy {
            assert!((LEFT..=WIDTH - RIGHT).contains(x), "{x} {svg}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(y), "{y} {svg}");
        }
        // The first run at the left edge, the last at the right; the highest value at
        // the top, the lowest at the bottom; later runs further right.
        assert_eq!(xy[0].0, LEFT);
        assert_eq!(xy[2].0, WIDTH - RIGHT);
        assert_eq!(xy[1].1, TOP);
        assert_eq!(xy[0].1, HEIGHT - BOTTOM);
        assert!(xy[0].0 < xy[1].0 && xy[1].0 < xy[3].0 && xy[3].0 < xy[2].0);
        // One line per board, through its own points in order.
        let lines = tags(&svg, "polyline");
        assert_eq!(lines.len(), 2);
        let first: Vec<&str> = attr(lines[0], "points").split(' ').collect();
        assert_eq!(first.len(), 3);
        assert_eq!(first[0], format!("{:.1},{:.1}", xy[0].0, xy[0].1));
        assert!(svg.contains("<title>r2: 20</title>"), "{svg}");
        // Axis labels: the value range and the run ids at the ends.
        for label in [">10<", ">15<", ">20<", ">r1<", ">r4<"] {
            assert!(svg.contains(label), "{label} in {svg}");
        }
    }

    #[test]
    fn a_constant_figure_is_drawn_mid_height_and_one_run_mid_width() {
        let s = vec![Series {
            name: "b".into(),
            points: vec![(0, 7.0, "r1: 7".into())],
        }];
        let svg = line_plot("rtt_ms", 1, &s, "r1", "r1").into_string();
        let c = tags(&svg, "circle")[0];
        let (x, y): (f64, f64) = (
            attr(c, "cx").parse().unwrap(),
            attr(c, "cy").parse().unwrap(),
        );
        assert!(
            (x - (LEFT + (WIDTH - LEFT - RIGHT) / 2.0)).abs() < 0.1,
            "{svg}"
        );
        assert!(
            (y - (TOP + (HEIGHT - TOP - BOTTOM) / 2.0)).abs() < 0.1,
            "{svg}"
        );
        assert_eq!(tick(7.0), "7");
        assert_eq!(tick(0.1234), "0.123");
        assert_eq!(tick(12.345), "12.35");
    }
}
