Attribute VB_Name = "cfxl_macros"
' cfxl's buttons by name: for Excel where Python cannot tell which button was clicked (macOS).
' A cfxl macro workbook binds every button to xlwings' SampleCall, which runs main() in the
' module beside the workbook; on Windows cfxl asks Excel which button that was. Elsewhere,
' import this module (Developer > Visual Basic > File > Import File...), then right-click each
' button, Assign Macro..., and pick the macro named after its caption.
' RunPython comes from the xlwings module the workbook already carries.
' This file is cfxl's own (Apache-2.0), not part of xlwings.

Sub CfxlReset()
    RunPython "import cfxl.excel.udfs; cfxl.excel.udfs.on_button('reset')"
End Sub

Sub CfxlRun()
    RunPython "import cfxl.excel.udfs; cfxl.excel.udfs.on_button('run')"
End Sub

Sub CfxlTrain()
    RunPython "import cfxl.excel.udfs; cfxl.excel.udfs.on_button('train')"
End Sub

Sub CfxlRefresh()
    RunPython "import cfxl.excel.udfs; cfxl.excel.udfs.on_button('refresh')"
End Sub
