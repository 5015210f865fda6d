#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A line chart written as hand-made SVG: series of points over a log2 x axis and a linear y axis from
/// zero, optional horizontal reference lines, axis labels and a legend.
struct SVGPlot {
    /// A line through points, drawn with markers.
    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
        /// Any SVG color, e.g. "#1f77b4".
        var color: String
        /// An SVG `stroke-dasharray` such as "6 3"; nil for a solid line.
        var dash: String?
    }

    /// A horizontal line across the plot at `y`.
    struct ReferenceLine {
        var label: String
        var y: Double
        var color: String
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var series: [Series]
    var referenceLines: [ReferenceLine] = []
    var width = 960.0
    var height = 560.0

    /// The chart as a complete SVG document.
    func render() -> String {
        let left = 70.0, top = 40.0, bottom = 60.0, legendWidth = 270.0
        let plotWidth = width - left - legendWidth - 20, plotHeight = height - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) }.filter { $0 > 0 }
        let minimumExponent = floor(log2(xs.min() ?? 1)),
            maximumExponent = max(ceil(log2(xs.max() ?? 2)), minimumExponent + 1)
        let ys = series.flatMap { $0.points.map(\.y) } + referenceLines.map(\.y)
        let yStep = niceStep((ys.filter(\.isFinite).max() ?? 1) * 1.08 / 6)
        let yMaximum = max(yStep, ceil((ys.filter(\.isFinite).max() ?? 1) * 1.08 / yStep) * yStep)
        func px(_ x: Double) -> Double {
            left + (log2(x) - minimumExponent) / (maximumExponent - minimumExponent) * plotWidth
        }
        func py(_ y: Double) -> Double { top + plotHeight - y / yMaximum * plotHeight }

        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(format(left + plotWidth / 2))" y="22" text-anchor="middle" font-size="15">\(escape(title))</text>

            """
        // Grid and tick labels.
        var exponent = minimumExponent
        let exponentStep = (maximumExponent - minimumExponent) > 14 ? 2.0 : 1.0
        while exponent <= maximumExponent {
            let x = px(pow(2, exponent))
            svg +=
                "<line x1=\"\(format(x))\" y1=\"\(format(top))\" x2=\"\(format(x))\" y2=\"\(format(top + plotHeight))\" stroke=\"#e5e5e5\"/>\n"
            svg +=
                "<text x=\"\(format(x))\" y=\"\(format(top + plotHeight + 18))\" text-anchor=\"middle\">\(powerOfTwoLabel(Int(exponent)))</text>\n"
            exponent += exponentStep
        }
        var tick = 0.0
        while tick <= yMaximum + yStep / 2 {
            let y = py(tick)
            svg +=
                "<line x1=\"\(format(left))\" y1=\"\(format(y))\" x2=\"\(format(left + plotWidth))\" y2=\"\(format(y))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(format(left - 8))\" y=\"\(format(y + 4))\" text-anchor=\"end\">\(format(tick))</text>\n"
            tick += yStep
        }
        svg +=
            "<rect x=\"\(format(left))\" y=\"\(format(top))\" width=\"\(format(plotWidth))\" height=\"\(format(plotHeight))\" fill=\"none\" stroke=\"#444\"/>\n"
        svg +=
            "<text x=\"\(format(left + plotWidth / 2))\" y=\"\(format(height - 16))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg +=
            "<text transform=\"translate(18 \(format(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"

        for line in referenceLines {
            let y = py(line.y)
            svg +=
                "<line x1=\"\(format(left))\" y1=\"\(format(y))\" x2=\"\(format(left + plotWidth))\" y2=\"\(format(y))\" stroke=\"\(line.color)\" stroke-width=\"2\" stroke-dasharray=\"10 4\"/>\n"
        }
        for series in series {
            let points = series.points.filter { $0.x > 0 && $0.y.isFinite }.sorted { $0.x < $1.x }
            let coordinates = points.map { "\(format(px($0.x))),\(format(py($0.y)))" }.joined(separator: " ")
            svg +=
                "<polyline fill=\"none\" stroke=\"\(series.color)\" stroke-width=\"1.8\"\(dashAttribute(series.dash)) points=\"\(coordinates)\"/>\n"
            for point in points {
                svg +=
                    "<circle cx=\"\(format(px(point.x)))\" cy=\"\(format(py(point.y)))\" r=\"2.5\" fill=\"\(series.color)\"/>\n"
            }
        }

        // Legend, right of the plot.
        let legendX = left + plotWidth + 20
        var legendY = top + 8
        for line in referenceLines {
            svg +=
                "<line x1=\"\(format(legendX))\" y1=\"\(format(legendY))\" x2=\"\(format(legendX + 28))\" y2=\"\(format(legendY))\" stroke=\"\(line.color)\" stroke-width=\"2\" stroke-dasharray=\"10 4\"/>\n"
            svg += "<text x=\"\(format(legendX + 36))\" y=\"\(format(legendY + 4))\">\(escape(line.label))</text>\n"
            legendY += 18
        }
        for series in series {
            svg +=
                "<line x1=\"\(format(legendX))\" y1=\"\(format(legendY))\" x2=\"\(format(legendX + 28))\" y2=\"\(format(legendY))\" stroke=\"\(series.color)\" stroke-width=\"1.8\"\(dashAttribute(series.dash))/>\n"
            svg += "<text x=\"\(format(legendX + 36))\" y=\"\(format(legendY + 4))\">\(escape(series.name))</text>\n"
            legendY += 18
        }
        return svg + "</svg>\n"
    }

    /// 1, 2 or 5 times a power of ten, at least `rough`.
    private func niceStep(_ rough: Double) -> Double {
        guard rough > 0, rough.isFinite else { return 1 }
        let magnitude = pow(10, floor(log10(rough)))
        return [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
    }

    /// `256`, `4K`, `1M` for 2^exponent.
    private func powerOfTwoLabel(_ exponent: Int) -> String {
        switch exponent {
        case 20...: "\(1 << (exponent - 20))M"
        case 10...: "\(1 << (exponent - 10))K"
        case 0...: "\(1 << exponent)"
        default: format(pow(2, Double(exponent)))
        }
    }

    private func dashAttribute(_ dash: String?) -> String {
        dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""
    }

    /// A coordinate or label with at most two decimals and no trailing zeros.
    private func format(_ value: Double) -> String {
        let text = String(printf: "%.2f", value)
        return text.contains(".") ? String(text.reversed().drop { $0 == "0" }.drop { $0 == "." }.reversed()) : text
    }

    private func escape(_ text: String) -> String {
        text.replacing("&", with: "&amp;").replacing("<", with: "&lt;")
            .replacing(">", with: "&gt;").replacing("\"", with: "&quot;")
    }
}
