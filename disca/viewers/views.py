# -*- coding: utf-8 -*-
"""Views that work on desktops and degrade to a printed message without a display.

A Scipion viewer returns views; ``show()`` opens them. On a headless machine (no DISPLAY,
or Tk cannot start) the views print and log where the files are instead of crashing.
"""
import logging
import os
import webbrowser

from pyworkflow.viewer import View, MessageView

logger = logging.getLogger(__name__)


def hasDisplay():
    """True when a GUI may open: DISPLAY (or WAYLAND_DISPLAY) set and tkinter importable.
    (No test window is created: inside Scipion's GUI a Tk root already exists; views still
    catch a failing window and fall back to a message.)"""
    if not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
        return False
    try:
        import tkinter  # noqa: F401
        return True
    except Exception:
        return False


class ConsoleMessageView(View):
    """A message shown in a Scipion dialog when possible, else printed and logged. With
    ``path`` the dialog also shows that path in a selectable field with a copy button."""

    def __init__(self, msg, title='DISCA', tkParent=None, path=None):
        View.__init__(self)
        self._msg, self._title, self._tkParent, self._path = msg, title, tkParent, path

    def getMessage(self):
        return '%s %s' % (self._msg, self._path) if self._path else self._msg

    def getPath(self):
        return self._path

    def show(self):
        text = '%s %s' % (self._msg, self._path) if self._path else self._msg
        logger.info('%s: %s', self._title, text)
        print('%s: %s' % (self._title, text), flush=True)
        if not hasDisplay():
            return
        try:
            if self._path:
                PathDialog(self._tkParent, self._title, self._msg, self._path)
            else:
                MessageView(self._msg, self._title, tkParent=self._tkParent).show()
        except Exception as exc:  # a broken Tk must not crash the viewer
            logger.warning('could not open a dialog: %s', exc)


def _pathDialogClass():
    from pyworkflow.gui.dialog import MessageDialog
    from pyworkflow.utils import Icon

    class _PathDialog(MessageDialog):
        """Scipion's message window plus the path in a read-only entry and a copy button."""

        def __init__(self, parent, title, msg, path):
            self.path = path
            MessageDialog.__init__(self, parent, title, msg, Icon.INFO,
                                   buttons=[('Close', 1)], default='Close')

        def body(self, bodyFrame):
            import tkinter as tk
            MessageDialog.body(self, bodyFrame)
            row = tk.Frame(bodyFrame)
            row.grid(row=1, column=0, columnspan=2, sticky='ew', padx=5, pady=5)
            self.pathVar = tk.StringVar(value=self.path)
            entry = tk.Entry(row, textvariable=self.pathVar, width=min(100, len(self.path) + 2),
                             state='readonly')
            entry.pack(side=tk.LEFT, fill=tk.X, expand=True)
            tk.Button(row, text='Copy path', command=self.copyPath).pack(side=tk.LEFT, padx=5)

        def copyPath(self):
            self.clipboard_clear()
            self.clipboard_append(self.path)
            self.floatingMessage.config(text='Copied to the clipboard.')

    return _PathDialog


def PathDialog(parent, title, msg, path):
    """Open (modal) the message window with a copyable path; returns it once closed."""
    return _pathDialogClass()(parent, title, msg, path)


class BrowserView(View):
    """Opens an HTML file in the web browser and always shows its path (with a copy
    button): ``webbrowser.open`` returns True even when the browser dies at once."""

    def __init__(self, path, title='DISCA report', tkParent=None):
        View.__init__(self)
        self._path = os.path.abspath(path)
        self._title = title
        self._tkParent = tkParent

    def getPath(self):
        return self._path

    def getMessage(self):
        return '%s: %s' % (self._title, self._path)

    def show(self):
        tried = False
        if hasDisplay():
            try:
                tried = webbrowser.open('file://' + self._path)
            except Exception as exc:
                logger.warning('web browser failed: %s', exc)
        what = ('A web browser was asked to open the report. If none appeared, open this '
                'file in one' if tried else 'Open this file in a web browser')
        ConsoleMessageView('%s (it is self-contained: you may copy it anywhere):'
                           % what, self._title, tkParent=self._tkParent, path=self._path).show()
