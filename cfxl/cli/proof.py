"""Commands that check workbooks: recalc (LibreOffice, --verify against torch), snapshot, diff."""

import click

from cfxl import report
from cfxl.cli.base import PATH, cli, output_options
from cfxl.errors import CfxlError


@cli.command()
@click.argument("book", type=PATH)
@output_options("Also save the recomputed workbook (.xlsx, .xlsm, .ods).")
@click.option("--verify", "check", is_flag=True, help="Compare with torch's values (its _torch sheet).")
@click.option("--rtol", type=float, default=1e-12, help="Relative tolerance of --verify.")
@click.option("--atol", type=float, default=1e-15, help="Absolute tolerance of --verify, near zero.")
def recalc(book, output, force, check, rtol, atol):
    """Recompute BOOK's formulas in LibreOffice; report errors and (--verify) cells off torch.

    Example: cfxl recalc lesson.xlsx --verify -o recomputed.xlsx"""
    from cfxl.proof import recalc as lo, verify as proof
    done = lo.recalc(book, output=output, force=force)
    verified = proof.verify(done, rtol=rtol, atol=atol) if check else None
    text, problems = report.recalc_report(done, verified)
    click.echo(text + (f"\nsaved {output}" if output is not None else ""))
    if problems:
        raise CfxlError(f"{book}: {problems}")


@cli.command()
@click.argument("book", type=PATH)
@output_options("Write the snapshot here, not to standard output.")
@click.option("--digits", type=click.IntRange(1, 17), default=12, help="Significant digits of numbers.")
def snapshot(book, output, force, digits):
    """Print a workbook as canonical text: cells, formulas, structure, charts, VBA, buttons.

    Example: cfxl snapshot lesson.xlsx -o lesson.txt"""
    from cfxl.proof.snapshot import snapshot as take, write_snapshot
    if output is None:
        return click.echo(take(book, digits=digits), nl=False)
    click.echo(f"saved {write_snapshot(book, output, digits=digits, force=force)}")


@cli.command()
@click.argument("a", type=PATH)
@click.argument("b", type=PATH)
@click.option("--rtol", type=float, default=1e-9, help="Numbers this close (relative) are equal.")
@click.option("--atol", type=float, default=1e-12, help="Numbers this close (absolute) are equal.")
@click.option("--sheet", help="Compare this sheet only.")
@click.option("--values-only", "mode", flag_value="values", help="Only cells holding a value.")
@click.option("--formulas-only", "mode", flag_value="formulas", help="Only cells holding a formula.")
def diff(a, b, rtol, atol, sheet, mode):
    """Compare two workbooks (or snapshots); exit status 0 equal, 1 different, 2 trouble.

    Example: cfxl diff old.xlsx new.xlsx --sheet loss --rtol 1e-6"""
    from cfxl.proof.diff import diff as compare, format_diff
    found = compare(a, b, rtol=rtol, atol=atol, sheet=sheet, mode=mode or "all")
    click.echo(format_diff(found).rstrip("\n") if found
               else f"no differences (rtol {rtol:g}, atol {atol:g})")
    raise SystemExit(1 if found else 0)
