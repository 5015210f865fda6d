/// How an RMSNorm applies its weight and where it rounds to the storage dtype: the conventions of the model
/// families users compare against.
///
/// With ŝ = s / sqrt(mean(s²) + ε) computed in fp32:
/// - ``Rounding/once``: y = round(ŝ · (w + weightOffset));
/// - ``Rounding/twice``: y = round(round(ŝ) · (w + weightOffset)), ŝ first rounded to the dtype of s.
///
/// ``standard`` (the default of every RMSNorm function, layer and command) is `torch.nn.RMSNorm`'s and MLX's;
/// ``llama`` and ``gemma`` are the Hugging Face `LlamaRMSNorm` and `GemmaRMSNorm` modules.
public struct RMSNormStyle: Sendable, Hashable, CustomStringConvertible {
    /// Where the result is rounded to the storage dtype.
    public enum Rounding: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// One rounding, at the end: y = round(ŝ · (w + offset)). The more accurate.
        case once
        /// ŝ rounded to the dtype of s, then y = round(round(ŝ) · (w + offset)) (`LlamaRMSNorm`).
        case twice

        public var description: String { rawValue }
    }

    /// Added to the stored weight: 0, or 1 for weights stored as w − 1 (Gemma). Finite.
    public var weightOffset: Float
    public var rounding: Rounding

    /// A style of your own; the presets ``standard``, ``llama`` and ``gemma`` cover the common models.
    /// - Parameters:
    ///   - weightOffset: added to the stored weight; finite; default 0.
    ///   - rounding: where to round; default ``Rounding/once``.
    public init(weightOffset: Float = 0, rounding: Rounding = .once) {
        self.weightOffset = weightOffset
        self.rounding = rounding
    }

    /// `torch.nn.RMSNorm`, MLX: y = round(ŝ · w). The default.
    public static let standard = RMSNormStyle(weightOffset: 0, rounding: .once)
    /// `LlamaRMSNorm` (also Mistral, Qwen): y = round(round(ŝ) · w).
    public static let llama = RMSNormStyle(weightOffset: 0, rounding: .twice)
    /// `GemmaRMSNorm`: y = round(ŝ · (1 + w)), weights stored as w − 1.
    public static let gemma = RMSNormStyle(weightOffset: 1, rounding: .once)

    /// The presets by name, in the order the command line lists them.
    public static let presets: [(name: String, style: RMSNormStyle)] = [
        ("standard", .standard), ("llama", .llama), ("gemma", .gemma),
    ]

    /// The preset called `name` (`standard`, `llama`, `gemma`), or nil.
    public init?(presetName name: String) {
        guard let preset = Self.presets.first(where: { $0.name == name.lowercased() }) else { return nil }
        self = preset.style
    }

    /// The value a new weight starts at, so that a new layer scales by 1.
    public var initialWeight: Float { 1 - weightOffset }

    /// The preset's name, else `weightOffset=…, rounding=…`.
    public var description: String {
        Self.presets.first { $0.style == self }?.name ?? "weightOffset=\(weightOffset), rounding=\(rounding)"
    }
}
