"""The programme's scoring criteria, as data: the programme stage scores by them and the report
tables name their columns by them (a module of its own, so that the tables need not import the
stage)."""

from __future__ import annotations

__all__ = ["CRITERIA"]

#: Criterion key → (value column, weight field in ProgrammeConfig, label for reports).
CRITERIA: dict[str, tuple[str, str, str]] = {
    "age": ("age_years", "weight_age", "建成年限 age"),
    "floor_area": ("floor_area_m2", "weight_floor_area", "建筑面积 floor area"),
    "households": ("households", "weight_households", "户数 households"),
    "gaps": ("gap_residents", "weight_gaps", "生活圈缺项×居民 gaps × residents"),
    "elevator": ("elevator_households", "weight_elevator", "加装电梯户数 lift need"),
    "unmanaged": ("unmanaged_share", "weight_unmanaged", "无物业 no property management"),
    "consent": ("consent_share", "weight_consent", "居民意愿 consent"),
    "colocation": ("colocation_packages", "weight_colocation", "相邻片区 co-location"),
}
