#!/usr/bin/env python3
"""Generates organisations.csv and members.csv for the member-registry benchmark.

usage: gen_members.py OUT_DIR [MEMBERS] [VILLAGES]
A county committee BENCH, 20 township committees, VILLAGES village branches under them;
MEMBERS members spread over the villages (valid GB 11643 IDs, statutory dates respected).
"""
import os
import random
import sys

W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
C = "10X98765432"


def make_id(area, birth, seq):
    s = f"{area}{birth}{seq:03d}"
    return s + C[sum(int(d) * w for d, w in zip(s, W)) % 11]


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    villages = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    os.makedirs(out, exist_ok=True)
    rnd = random.Random(42)
    with open(os.path.join(out, "organisations.csv"), "w", newline="") as f:
        f.write("org_code,name,org_type,org_kind,parent_code,division_code\n")
        f.write("BENCH,基准县委,committee,county,,320723000000\n")
        for t in range(20):
            f.write(f"BT{t},乡镇党委{t},committee,township,BENCH,320723{t:03d}000\n")
        for v in range(villages):
            f.write(f"BV{v},村党支部{v},branch,village,BT{v % 20},320723{v % 20:03d}{v % 1000:03d}\n")
    seen = set()
    statuses = ["full"] * 6 + ["probationary", "applicant", "activist", "development_target"]
    with open(os.path.join(out, "members.csv"), "w", newline="") as f:
        f.write("id_number,name,gender,ethnicity,birth_date,education,occupation,phone,org_code,status,"
                "applied_on,joined_on,full_on,monthly_income_fen,is_mobile\r\n")
        i = 0
        while i < n:
            y = rnd.randint(1940, 2000)
            m = rnd.randint(1, 12)
            d = rnd.randint(1, 28)
            area = f"3207{rnd.randint(0, 99):02d}"
            seq = rnd.randint(0, 999)
            key = (area, y, m, d, seq)
            if key in seen:
                continue
            seen.add(key)
            idn = make_id(area, f"{y}{m:02d}{d:02d}", seq)
            st = statuses[i % len(statuses)]
            applied = f"{y + 20}-03-01"
            joined = f"{y + 22}-05-01" if st in ("full", "probationary") else ""
            if st == "probationary":
                joined = "2025-09-01"
            full = f"{y + 23}-06-01" if st == "full" else ""
            name = "张\U00020000" if i % 1000 == 0 else f"党员{i}"  # a character outside the BMP now and then
            occ = '"农民, ""种粮大户"""' if i % 500 == 0 else "农民"
            f.write(f"{idn},{name},{'MF'[i % 2]},汉族,{y}-{m:02d}-{d:02d},junior_high,{occ},1381234{i % 10000:04d},"
                    f"BV{i % villages},{st},{applied},{joined},{full},{rnd.randint(0, 900000)},{i % 7 == 0:d}\r\n")
            i += 1


if __name__ == "__main__":
    main()
