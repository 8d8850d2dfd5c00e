//! Energy and latency per inference, by component and by converter.

use crate::report::document::*;
use crate::report::format::*;
use crate::results::*;

pub(super) fn energy_tables(energy: &Energy) -> Vec<Block> {
    let share = |pj: f64| {
        if energy.total_pj > 0.0 {
            fixed(100.0 * pj / energy.total_pj, 1)
        } else {
            "–".to_string()
        }
    };
    let parts = [
        ("analog MVM", energy.analog_pj),
        ("ADC", energy.adc_pj),
        ("DAC", energy.dac_pj),
        ("communication", energy.communication_pj),
        ("digital", energy.digital_pj),
        ("total", energy.total_pj),
    ];
    let breakdown = Table {
        header: vec!["component".to_string(), "energy (pJ)".to_string(), "share (%)".to_string()],
        rows: parts.iter().map(|(name, pj)| vec![text(*name), text(significant(*pj, 4)), text(share(*pj))]).collect(),
        right_aligned: vec![false, true, true],
    };
    let counts = [
        ("analog MVMs", energy.analog_mvms),
        ("ADC conversions", energy.adc_conversions),
        ("DAC conversions", energy.dac_conversions),
        ("digital operations", energy.digital_ops),
    ];
    let operations = Table {
        header: vec!["operation".to_string(), "count per inference".to_string()],
        rows: counts.iter().map(|(name, n)| vec![text(*name), text(n.to_string())]).collect(),
        right_aligned: vec![false, true],
    };
    vec![
        Block::Paragraph(text(format!(
            "Total {} and latency {} per inference, from the cost table {}.",
            energy_label(energy.total_pj),
            latency_label(energy.latency_ns),
            energy.table
        ))),
        Block::Table(breakdown),
        Block::Table(operations),
    ]
}
