package site

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/stats"
)

// Plot sizes, in points. The page scales them to its width.
const (
	seriesWidth  = 600
	legendWidth  = 130
	plotHeight   = 230
	histWidth    = 480
	maxFlatLabel = 70 // characters of bin labels that fit unrotated
)

// palette tells bins apart (Tableau 10, which stays legible to most
// colour-blind readers).
var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xd6, 0x27, 0x28, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
	{0xbc, 0xbd, 0x22, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
}

func colour(i int, alpha uint8) color.NRGBA {
	c := palette[i%len(palette)]
	return color.NRGBA{c.R, c.G, c.B, alpha}
}

// point is one round's total of one bin.
type point struct {
	at            time.Time
	total, lo, hi float64
}

// seriesSVG draws one statistic's noisy totals over rounds: per bin a line
// through the totals (at each window's end) inside its 95% band, a zero
// line, and the values in the statistic's unit.
func seriesSVG(name string, rounds []Round) (template.HTML, error) {
	var labels []string
	byBin := map[string][]point{}
	for _, r := range rounds {
		s := find(r.Outcome, name)
		if s == nil {
			continue
		}
		for _, b := range s.Bins {
			if _, ok := byBin[b.Label]; !ok {
				labels = append(labels, b.Label)
			}
			byBin[b.Label] = append(byBin[b.Label], point{r.Window.End, float64(b.NoisyTotal), b.CI95Low, b.CI95High})
		}
	}
	if len(labels) == 0 {
		return "", nil
	}
	p := newPlot()
	p.X.Label.Text = "end of the round's window (UTC)"
	p.Y.Label.Text = axisUnit(stats.Unit(name))
	first, last := rounds[0].Window.End, rounds[len(rounds)-1].Window.End
	p.X.Tick.Marker = plot.TimeTicks{Format: timeFormat(last.Sub(first)), Time: func(t float64) time.Time { return time.Unix(int64(t), 0).UTC() }}
	// Many bins' bands overlap; fainter ones keep the lines readable.
	alpha := uint8(0x38)
	if len(labels) > 3 {
		alpha = 0x16
	}
	legend := plot.NewLegend()
	legend.TextStyle.Font.Variant, legend.TextStyle.Font.Size = "Sans", vg.Points(10)
	legend.Top, legend.Left = true, true
	for i, label := range labels {
		pts := byBin[label]
		line, band := make(plotter.XYs, len(pts)), make(plotter.XYs, 0, 2*len(pts))
		for j, q := range pts {
			line[j] = plotter.XY{X: unix(q.at), Y: q.total}
			band = append(band, plotter.XY{X: unix(q.at), Y: q.hi})
		}
		for j := len(pts) - 1; j >= 0; j-- {
			band = append(band, plotter.XY{X: unix(pts[j].at), Y: pts[j].lo})
		}
		poly, err := plotter.NewPolygon(band)
		if err != nil {
			return "", err
		}
		poly.Color, poly.LineStyle.Width = colour(i, alpha), 0
		l, dots, err := plotter.NewLinePoints(line)
		if err != nil {
			return "", err
		}
		l.Color, l.Width = colour(i, 0xff), vg.Points(1.5)
		dots.Color, dots.Shape, dots.Radius = colour(i, 0xff), draw.CircleGlyph{}, vg.Points(2.5)
		p.Add(poly, l, dots)
		legend.Add(label, l, poly)
	}
	// The first and last rounds' dots sit clear of the axes; one round
	// alone gets an axis a round long either side.
	pad := (p.X.Max - p.X.Min) / 30
	if pad == 0 {
		pad = math.Max(rounds[0].Window.End.Sub(rounds[0].Window.Start).Seconds(), 1)
	}
	p.X.Min, p.X.Max = p.X.Min-pad, p.X.Max+pad
	withZero(p)
	if len(labels) == 1 {
		return render(p, seriesWidth, plotHeight, nil)
	}
	return render(p, seriesWidth+legendWidth, plotHeight, &legend)
}

// histogramSVG draws one round's bins of a statistic as bars with 95%
// interval whiskers and a zero line.
func histogramSVG(s *outcome.Statistic) (template.HTML, error) {
	if len(s.Bins) < 2 {
		return "", nil
	}
	p := newPlot()
	values := make(plotter.Values, len(s.Bins))
	whiskers := make(errorPoints, len(s.Bins))
	labels := make([]string, len(s.Bins))
	width := 0
	for i, b := range s.Bins {
		values[i] = float64(b.NoisyTotal)
		whiskers[i] = errorPoint{x: float64(i), y: values[i], lo: values[i] - b.CI95Low, hi: b.CI95High - values[i]}
		labels[i] = b.Label
		width += len(b.Label) + 2
	}
	bars, err := plotter.NewBarChart(values, vg.Points(float64(histWidth-80)/float64(len(values))*0.7))
	if err != nil {
		return "", err
	}
	bars.Color, bars.LineStyle.Width = colour(0, 0xb0), 0
	bars.Horizontal = false
	errs, err := plotter.NewYErrorBars(whiskers)
	if err != nil {
		return "", err
	}
	errs.LineStyle.Width = vg.Points(1.2)
	p.Add(bars, errs)
	p.NominalX(labels...)
	if width > maxFlatLabel {
		p.X.Tick.Label.Rotation = math.Pi / 5
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YTop
	}
	p.X.Label.Text = "bin"
	if u := stats.BinUnit(s.Name); u != "" {
		p.X.Label.Text = "bin (" + u + ")"
	}
	p.Y.Label.Text = axisUnit(stats.Unit(s.Name))
	withZero(p)
	return render(p, histWidth, plotHeight, nil)
}

// errorPoints are bars' tops with their interval, for YErrorBars.
type errorPoint struct{ x, y, lo, hi float64 }
type errorPoints []errorPoint

func (e errorPoints) Len() int                    { return len(e) }
func (e errorPoints) XY(i int) (float64, float64) { return e[i].x, e[i].y }
func (e errorPoints) YError(i int) (float64, float64) {
	return e[i].lo, e[i].hi
}

func newPlot() *plot.Plot {
	p := plot.New()
	// Liberation Sans has Arial's metrics, so labels laid out here fit
	// whichever of the two the browser draws them with (the page's CSS
	// names both).
	for _, f := range []*plot.Axis{&p.X, &p.Y} {
		f.Label.TextStyle.Font.Variant = "Sans"
		f.Tick.Label.Font.Variant = "Sans"
		f.Tick.Label.Font.Size = vg.Points(10)
		f.Label.TextStyle.Font.Size = vg.Points(11)
	}
	p.Y.Tick.Marker = siTicks{}
	p.Add(plotter.NewGrid())
	return p
}

// withZero makes the value axis reach zero and draws the zero line, so a
// negative total reads as one.
func withZero(p *plot.Plot) {
	p.Y.Min, p.Y.Max = math.Min(p.Y.Min, 0), math.Max(p.Y.Max, 0)
	if p.Y.Min == p.Y.Max {
		p.Y.Max = 1
	}
	zero := plotter.NewFunction(func(float64) float64 { return 0 })
	zero.Samples, zero.Color, zero.Width = 2, color.Black, vg.Points(0.8)
	p.Add(zero)
}

// render draws p as SVG markup to inline in a page; a legend goes in a
// column right of the plot rather than over the data.
func render(p *plot.Plot, w, h vg.Length, legend *plot.Legend) (template.HTML, error) {
	c := vgsvg.New(w, h)
	dc := draw.New(c)
	if legend != nil {
		area := dc
		area.Max.X -= legendWidth
		p.Draw(area)
		side := dc
		side.Min.X = dc.Max.X - legendWidth + 8
		side.Max.Y -= 8
		legend.Draw(side)
	} else {
		p.Draw(dc)
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", err
	}
	// Inline SVG needs neither the XML declaration nor the comment before
	// the root element.
	svg := buf.String()
	if i := strings.Index(svg, "<svg"); i >= 0 {
		svg = svg[i:]
	}
	svg = strings.Replace(svg, "<svg ", `<svg class="plot" role="img" `, 1)
	return template.HTML(svg), nil
}

// siTicks labels a value axis with SI prefixes (12k, 3.4M, 1.2G), since
// totals of bytes run to fifteen digits.
type siTicks struct{}

func (siTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = si(ticks[i].Value)
		}
	}
	return ticks
}

func si(v float64) string {
	a := math.Abs(v)
	for _, p := range []struct {
		f float64
		s string
	}{{1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if a >= p.f {
			return trimFloat(v/p.f) + p.s
		}
	}
	return trimFloat(v)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3g", v)
	if strings.ContainsAny(s, "e") {
		return fmt.Sprintf("%.3f", v)
	}
	return s
}

// axisUnit is the label of a value axis.
func axisUnit(unit string) string {
	if unit == "" {
		return "noisy total"
	}
	return "noisy total (" + unit + ")"
}

func timeFormat(span time.Duration) string {
	switch {
	case span < 24*time.Hour:
		return "15:04:05"
	case span < 30*24*time.Hour:
		return "Jan 02 15:04"
	}
	return "2006-01-02"
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// find returns the statistic of o with the given name, or nil.
func find(o *outcome.Outcome, name string) *outcome.Statistic {
	for i := range o.Statistics {
		if o.Statistics[i].Name == name {
			return &o.Statistics[i]
		}
	}
	return nil
}
