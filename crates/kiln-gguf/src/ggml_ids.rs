//! Every GGML tensor type id a GGUF file may carry, with its name and block layout, including
//! the types kiln cannot compute with (kiln-quant's [`GgmlType`] lists those it can).
//!
//! The reader uses this table for two things: naming an unsupported type in its error ("type id
//! 10 (Q2_K)") and checking, already at open, that the data of *every* tensor lies inside the
//! file, so a truncated download is caught even when its damaged tensors are of a type kiln would
//! never read. Sizes are gguf-py 0.19.0's `GGML_QUANT_SIZES` (= llama.cpp's `type_traits`).

use kiln_quant::GgmlType;

/// (values per block, bytes per block), or None for ids llama.cpp has removed.
type Layout = Option<(u64, u64)>;

/// (id, name, layout).
const TABLE: &[(u32, &str, Layout)] = &[
    (0, "F32", Some((1, 4))),
    (1, "F16", Some((1, 2))),
    (2, "Q4_0", Some((32, 18))),
    (3, "Q4_1", Some((32, 20))),
    (4, "Q4_2", None),
    (5, "Q4_3", None),
    (6, "Q5_0", Some((32, 22))),
    (7, "Q5_1", Some((32, 24))),
    (8, "Q8_0", Some((32, 34))),
    (9, "Q8_1", Some((32, 40))),
    (10, "Q2_K", Some((256, 84))),
    (11, "Q3_K", Some((256, 110))),
    (12, "Q4_K", Some((256, 144))),
    (13, "Q5_K", Some((256, 176))),
    (14, "Q6_K", Some((256, 210))),
    (15, "Q8_K", Some((256, 292))),
    (16, "IQ2_XXS", Some((256, 66))),
    (17, "IQ2_XS", Some((256, 74))),
    (18, "IQ3_XXS", Some((256, 98))),
    (19, "IQ1_S", Some((256, 50))),
    (20, "IQ4_NL", Some((32, 18))),
    (21, "IQ3_S", Some((256, 110))),
    (22, "IQ2_S", Some((256, 82))),
    (23, "IQ4_XS", Some((256, 136))),
    (24, "I8", Some((1, 1))),
    (25, "I16", Some((1, 2))),
    (26, "I32", Some((1, 4))),
    (27, "I64", Some((1, 8))),
    (28, "F64", Some((1, 8))),
    (29, "IQ1_M", Some((256, 56))),
    (30, "BF16", Some((1, 2))),
    (31, "Q4_0_4_4", None),
    (32, "Q4_0_4_8", None),
    (33, "Q4_0_8_8", None),
    (34, "TQ1_0", Some((256, 54))),
    (35, "TQ2_0", Some((256, 66))),
    (36, "IQ4_NL_4_4", None),
    (37, "IQ4_NL_4_8", None),
    (38, "IQ4_NL_8_8", None),
    (39, "MXFP4", Some((32, 17))),
    (40, "NVFP4", Some((64, 36))),
    (41, "Q1_0", Some((128, 18))),
];

/// The GGML name of type id `id` (`Q2_K`), if GGML has or had such a type.
pub fn type_name(id: u32) -> Option<&'static str> {
    TABLE.iter().find(|t| t.0 == id).map(|t| t.1)
}

/// (values per block, bytes per block) of type id `id`, when the layout is known.
pub(crate) fn block_layout(id: u32) -> Option<(u64, u64)> {
    if let Some(t) = GgmlType::from_id(id) {
        return Some((t.block_size() as u64, t.block_bytes() as u64));
    }
    TABLE.iter().find(|t| t.0 == id).and_then(|t| t.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_agrees_with_kiln_quant() {
        for t in GgmlType::ALL {
            let row = TABLE.iter().find(|r| r.0 == t.id()).expect("every kiln type is in the table");
            assert_eq!(row.1, t.name());
            assert_eq!(row.2, Some((t.block_size() as u64, t.block_bytes() as u64)));
        }
        assert_eq!(type_name(10), Some("Q2_K"));
        assert_eq!(type_name(1000), None);
    }
}
