/// Where RMSNorm rounds to the storage dtype, following the two Hugging Face modules users compare against.
public enum RMSNormCasting: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// `LlamaRMSNorm`: ŝ is rounded to the input dtype, then multiplied by (w + offset) and rounded again
    /// to the output dtype: y = round(round(ŝ) · (w + offset)).
    case llama
    /// `GemmaRMSNorm`: one rounding at the end: y = round(ŝ · (w + offset)). The more accurate choice.
    case gemma

    public var description: String { rawValue }
}
