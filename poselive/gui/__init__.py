"""The PyQt5 window (`poselive gui`, `poselive run --show`, `poselive demo --show`).

    window.py   MainWindow (video view, source picker, toggles, smoothing sliders, record, screenshot,
                status bar) and gui_command, the CLI entry point
    worker.py   LiveWorker: a QObject on its own QThread that owns the source, the latest-frame grabber and the
                pipeline, and hands each rendered overlay to the window through a signal
    view.py     VideoView (draws the newest overlay, aspect kept) and numpy <-> QImage conversion

Qt lives only in this package; the window knows the pipeline's results, never the models. Importing
`poselive.gui` imports no Qt: the modules above do.
"""
