#!/usr/bin/env python3
"""Generates a province for the disbursement benchmark, with anomalies of every rule planted.

usage: disbursement_gen.py OUT_DIR [RECIPIENTS] [PER_RULE]

Writes programmes.csv, recipients.csv, enrolments.csv, civil_events.csv, batches.csv,
payments.csv (formats.md) and expected_findings.csv: the (rule, program_code, period, id_number,
payment_id) of every finding the check must report with `--as-of 2026-04-30` and no other.

The province: RECIPIENTS people (default 200,000) in max(1, RECIPIENTS / 100,000) counties
(5,000,000 -> 50), villages of about 1,000, households of two (head + one member). Two person
programmes, both monthly, everyone enrolled from 2026-03: GDLB (12000 fen, excludes cadre
households) and JTBT (8000 fen). One payment per person and programme for 2026-03, so about
2 x RECIPIENTS payment rows, in one batch per county and programme (scheduled 2026-03-20,
declared totals equal to the rows, reversals included, except the planted mismatches).

PER_RULE (default 3) instances of each planted anomaly, each on its own household spread evenly
through the file; a fully reversed and re-paid payment (no finding) is planted as well.
"""
import csv
import os
import sys

W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK = "10X98765432"
PERIOD = "2026-03"
PAID = "2026-03-18T10:00:00+08:00"
SCHEDULED = "2026-03-20"
AMOUNT = {"GDLB": 12000, "JTBT": 8000}

# The planted kinds, in order; each instance takes one household (SHARED_ACCOUNT takes four).
KINDS = ["BAD_REVERSAL", "OUTSIDE_WINDOW", "AFTER_DEATH", "CADRE_KIN", "NOT_ENTITLED", "DUPLICATE",
         "WRONG_ACCOUNT", "SHARED_ACCOUNT", "OVER_PAID", "SHORT_PAID", "SHORT_PAID_NET", "LATE", "UNPAID",
         "REVERSED_REPAID"]


def days_table(n):
    """n consecutive birth dates from 1950-01-01 as YYYYMMDD strings."""
    import datetime
    d0 = datetime.date(1950, 1, 1)
    return [(d0 + datetime.timedelta(days=k)).strftime("%Y%m%d") for k in range(n)]


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    per_rule = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    n -= n % 2
    os.makedirs(out, exist_ok=True)
    counties = max(1, n // 100_000)
    area = "320723"
    births = days_table(10_000)
    pre = [sum(int(c) * w for c, w in zip(area + b, W[:14])) for b in births]
    seqsum = [sum(int(c) * w for c, w in zip(f"{s:03d}", W[14:])) for s in range(1000)]

    def idn(i):
        b, s = divmod(i, 1000)
        return f"{area}{births[b]}{s:03d}{CHECK[(pre[b] + seqsum[s]) % 11]}"

    def account(i):
        return f"6228{i:014d}"

    def county_of(i):
        return i * counties // n

    # Slots: households spread evenly; slot k -> head index.
    slots_needed = per_rule * (len(KINDS) + 3)
    if slots_needed * 4 > n // 2:
        sys.exit("too few recipients for the planted anomalies")
    step = (n // 2) // slots_needed
    heads = [2 * (k * step + step // 2) for k in range(slots_needed)]
    kind_of = {}  # head index -> kind
    shared_groups = []
    k = 0
    for kind in KINDS:
        for _ in range(per_rule):
            if kind == "SHARED_ACCOUNT":
                group = heads[k:k + 4]
                k += 4
                shared_groups.append(group)
                for h in group:
                    kind_of[h] = kind
            else:
                kind_of[heads[k]] = kind
                k += 1
    shared_account = {}
    for group in shared_groups:
        for h in group:
            shared_account[h] = account(group[0])

    expected = []
    nl = "\n"
    with open(os.path.join(out, "programmes.csv"), "w") as f:
        f.write("program_code,name,unit,frequency,amount_fen,valid_from,valid_to,excludes_cadre_households,grace_days\n")
        f.write("GDLB,耕地地力保护补贴,person,monthly,12000,2025-01,,1,5\n")
        f.write("JTBT,高龄津贴,person,monthly,8000,2025-01,,0,5\n")

    with open(os.path.join(out, "recipients.csv"), "w", buffering=1 << 20) as f:
        f.write("id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n")
        vil = max(1, n // 1000)
        for i in range(n):
            head = i % 2 == 0
            h = i - (i % 2)
            acc = shared_account.get(i) or account(i)
            cadre = "1" if head and kind_of.get(i) == "CADRE_KIN" else "0"
            f.write(f"{idn(i)},村民{i},BC{county_of(i):02d}V{i * vil // n:05d},H{h:09d},{int(head)},{acc},2020-01-01,{cadre}\n")

    with open(os.path.join(out, "enrolments.csv"), "w", buffering=1 << 20) as f:
        f.write("program_code,id_number,amount_fen,from_period,to_period\n")
        for prog in ("GDLB", "JTBT"):
            for i in range(n):
                if prog == "JTBT" and kind_of.get(i) == "NOT_ENTITLED":
                    continue
                f.write(f"{prog},{idn(i)},,{PERIOD},\n")

    with open(os.path.join(out, "civil_events.csv"), "w") as f:
        f.write("id_number,event,event_date,source_ref\n")
        for i, kind in sorted(kind_of.items()):
            if kind == "AFTER_DEATH":
                f.write(f"{idn(i)},death,2026-01-15,MZ-{i}\n")
        f.write(f"{idn(1)},emigration,2025-06-01,MZ-E1\n")  # an event that is no death: no finding

    batches = []  # (batch_id, program, period, count, total)
    if per_rule > 2 * counties:
        sys.exit("too few batches for the planted BATCH_MISMATCH")
    mismatched = {j * 2 * counties // per_rule for j in range(per_rule)}
    with open(os.path.join(out, "payments.csv"), "w", buffering=1 << 22) as f:
        f.write("payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses\n")
        for prog in ("GDLB", "JTBT"):
            amount = AMOUNT[prog]
            letter = prog[0]
            for c in range(counties):
                batch = f"B-{prog}-C{c:02d}"
                lo = -(-c * n // counties)
                hi = -(-(c + 1) * n // counties)
                count = 0
                total = 0
                for i in range(lo, hi):
                    pid = f"{letter}{i:09d}"
                    kind = kind_of.get(i)
                    if kind is None and i - 1 in kind_of and kind_of[i - 1] == "CADRE_KIN" and prog == "GDLB":
                        kind = "CADRE_MEMBER"
                    if kind is None or (prog == "JTBT" and kind not in ("AFTER_DEATH", "NOT_ENTITLED", "SHARED_ACCOUNT")):
                        f.write(f"{pid},{batch},{prog},{PERIOD},{idn(i)},{account(i)},{amount},{PAID},\n")
                        count += 1
                        total += amount
                        continue
                    rows = []  # (payment_id, period, account, amount, paid_at, reverses)
                    person = idn(i)
                    acc = shared_account.get(i) or account(i)
                    if kind == "BAD_REVERSAL":
                        rows.append((pid, PERIOD, acc, amount, PAID, ""))
                        rows.append((f"R{i:09d}", PERIOD, acc, -500, "2026-03-19T09:00:00+08:00", f"NOSUCH{i}"))
                        expected.append(("BAD_REVERSAL", prog, PERIOD, person, f"R{i:09d}"))
                    elif kind == "OUTSIDE_WINDOW":
                        rows.append((pid, PERIOD, acc, amount, PAID, ""))
                        rows.append((f"W{i:09d}", "2024-12", acc, amount, PAID, ""))
                        expected.append(("OUTSIDE_WINDOW", prog, "2024-12", person, f"W{i:09d}"))
                    elif kind in ("AFTER_DEATH", "CADRE_KIN", "CADRE_MEMBER", "NOT_ENTITLED", "SHARED_ACCOUNT"):
                        if kind == "NOT_ENTITLED" and prog == "GDLB":
                            rows.append((pid, PERIOD, acc, amount, PAID, ""))
                        else:
                            rows.append((pid, PERIOD, acc, amount, PAID, ""))
                            rule = "CADRE_KIN" if kind == "CADRE_MEMBER" else kind
                            expected.append((rule, prog, PERIOD, person, pid))
                    elif kind == "DUPLICATE":
                        rows.append((pid, PERIOD, acc, amount, PAID, ""))
                        rows.append((f"D{i:09d}", PERIOD, acc, amount, "2026-03-19T10:00:00+08:00", ""))
                        expected.append(("DUPLICATE", prog, PERIOD, person, f"D{i:09d}"))
                    elif kind == "WRONG_ACCOUNT":
                        rows.append((pid, PERIOD, f"6229{i:014d}", amount, PAID, ""))
                        expected.append(("WRONG_ACCOUNT", prog, PERIOD, person, pid))
                    elif kind == "OVER_PAID":
                        rows.append((pid, PERIOD, acc, amount + 1000, PAID, ""))
                        expected.append(("OVER_PAID", prog, PERIOD, person, pid))
                    elif kind == "SHORT_PAID":
                        rows.append((pid, PERIOD, acc, amount - 1000, PAID, ""))
                        expected.append(("SHORT_PAID", prog, PERIOD, person, pid))
                    elif kind == "SHORT_PAID_NET":  # reversed in part: judged at its net amount
                        rows.append((pid, PERIOD, acc, amount, PAID, ""))
                        rows.append((f"R{i:09d}", PERIOD, acc, -2000, "2026-03-19T09:00:00+08:00", pid))
                        expected.append(("SHORT_PAID", prog, PERIOD, person, pid))
                    elif kind == "LATE":
                        rows.append((pid, PERIOD, acc, amount, "2026-03-28T10:00:00+08:00", ""))
                        expected.append(("LATE", prog, PERIOD, person, pid))
                    elif kind == "UNPAID":
                        expected.append(("UNPAID", prog, PERIOD, person, ""))
                    elif kind == "REVERSED_REPAID":  # reversed in full, paid again: no finding
                        rows.append((pid, PERIOD, acc, amount, PAID, ""))
                        rows.append((f"R{i:09d}", PERIOD, acc, -amount, "2026-03-19T09:00:00+08:00", pid))
                        rows.append((f"N{i:09d}", PERIOD, acc, amount, "2026-03-19T10:00:00+08:00", ""))
                    for p, period, a, amt, at, rev in rows:
                        f.write(f"{p},{batch},{prog},{period},{person},{a},{amt},{at},{rev}\n")
                        count += 1
                        total += amt
                declared = count
                if len(batches) in mismatched:
                    declared += 1
                    expected.append(("BATCH_MISMATCH", prog, PERIOD, "", ""))
                batches.append((batch, prog, PERIOD, declared, total))

    with open(os.path.join(out, "batches.csv"), "w") as f:
        f.write("batch_id,program_code,period,declared_count,declared_total_fen,scheduled_on\n")
        for b in batches:
            f.write(f"{b[0]},{b[1]},{b[2]},{b[3]},{b[4]},{SCHEDULED}\n")

    expected.sort()
    with open(os.path.join(out, "expected_findings.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator=nl)
        w.writerow(["rule", "program_code", "period", "id_number", "payment_id"])
        w.writerows(expected)
    print(f"{n} recipients, {counties} counties, {len(batches)} batches, {len(expected)} planted findings "
          f"({per_rule} per kind)")


if __name__ == "__main__":
    main()
