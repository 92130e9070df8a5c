"""The datacompy side of the benchmark: same files, same normalisation, same difference sets.

    python -m benchmarks.datacompy_side pandas|polars REGISTER.csv DOSSIERS.csv   (prints JSON sets)
"""

from __future__ import annotations

import json
import sys

from reconcile.util.normalize import _DASH, _SPACE

REG = {"Mã hồ sơ": "code", "Tên cá nhân, tổ chức": "applicant", "Nhận hồ sơ": "received_at",
       "Hẹn trả kết quả": "due_at", "Trả kết quả": "returned_at"}
SYS = {"dossier_code": "code", "applicant": "applicant", "received_at": "received_at", "due_at": "due_at",
       "returned_at": "returned_at"}
COMPARED = ("applicant", "received_at", "due_at", "returned_at")


def with_pandas(reg_path: str, sys_path: str) -> dict[str, list[str]]:
    import datacompy
    import pandas as pd

    def load(path: str, names: dict[str, str], date_format: str) -> pd.DataFrame:
        df = pd.read_csv(path, dtype=str, engine="pyarrow", encoding="utf-8-sig")[list(names)].rename(columns=names)
        df["code"] = (df["code"].str.replace(_SPACE, "", regex=True).str.replace(_DASH, "-", regex=True)
                      .str.upper().str.normalize("NFC"))
        df["applicant"] = (df["applicant"].str.replace(_SPACE + "+", " ", regex=True).str.strip(" ")
                           .str.normalize("NFC").str.lower())
        for c in ("received_at", "due_at", "returned_at"):
            df[c] = pd.to_datetime(df[c], format=date_format, errors="coerce")
        return df[df["code"].notna() & (df["code"] != "")]

    reg = load(reg_path, REG, "%d/%m/%Y")
    reg = (reg.assign(_no_return=reg["returned_at"].isna(), _pos=range(len(reg)))
           .sort_values(["code", "_no_return", "_pos"]).drop_duplicates("code")
           .drop(columns=["_no_return", "_pos"]))
    sys_ = load(sys_path, SYS, "%Y-%m-%d").drop_duplicates("code")
    cmp = datacompy.PandasCompare(reg, sys_, join_columns="code")
    rows = cmp.intersect_rows
    out = {"only_register": cmp.df1_unq_rows["code"].tolist(), "only_system": cmp.df2_unq_rows["code"].tolist()}
    for c in COMPARED:
        both = rows[f"{c}_df1"].notna() & rows[f"{c}_df2"].notna()
        out[c] = rows.loc[both & ~rows[f"{c}_match"], "code"].tolist()
    return {k: sorted(v) for k, v in out.items()}


def with_polars(reg_path: str, sys_path: str) -> dict[str, list[str]]:
    import datacompy
    import polars as pl

    def load(path: str, names: dict[str, str], date_format: str) -> pl.DataFrame:
        df = pl.read_csv(path, infer_schema=False).select(list(names)).rename(names)
        df = df.with_columns(
            pl.col("code").str.replace_all(_SPACE, "").str.replace_all(_DASH, "-").str.to_uppercase()
            .str.normalize("NFC"),
            pl.col("applicant").str.replace_all(_SPACE + "+", " ").str.strip_chars(" ").str.normalize("NFC")
            .str.to_lowercase(),
            *[pl.col(c).str.strptime(pl.Date, date_format, strict=False) for c in ("received_at", "due_at",
                                                                                 "returned_at")],
        )
        return df.filter(pl.col("code").is_not_null() & (pl.col("code") != ""))

    reg = load(reg_path, REG, "%d/%m/%Y").with_row_index("_pos")
    reg = (reg.sort(["code", pl.col("returned_at").is_null(), "_pos"]).unique("code", keep="first",
                                                                              maintain_order=True)
           .drop("_pos"))
    sys_ = load(sys_path, SYS, "%Y-%m-%d").unique("code", keep="first", maintain_order=True)
    cmp = datacompy.PolarsCompare(reg, sys_, join_columns="code")
    rows = cmp.intersect_rows
    out = {"only_register": cmp.df1_unq_rows["code"].to_list(), "only_system": cmp.df2_unq_rows["code"].to_list()}
    for c in COMPARED:
        sel = rows.filter(pl.col(f"{c}_df1").is_not_null() & pl.col(f"{c}_df2").is_not_null()
                          & ~pl.col(f"{c}_match"))
        out[c] = sel["code"].to_list()
    return {k: sorted(v) for k, v in out.items()}


if __name__ == "__main__":
    backend, reg_path, sys_path = sys.argv[1:4]
    sets = (with_pandas if backend == "pandas" else with_polars)(reg_path, sys_path)
    print(json.dumps(sets))
