"""Excel on top: xlwings functions, macro workbooks, their buttons' actions, sheets updated in place."""
