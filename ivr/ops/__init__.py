"""Operations: the live page, metrics, call records and personal-data masking."""
