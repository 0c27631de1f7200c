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
    """A message shown in a dialog when possible, else printed and logged."""

    def __init__(self, msg, title='DISCA', tkParent=None):
        View.__init__(self)
        self._msg, self._title, self._tkParent = msg, title, tkParent

    def getMessage(self):
        return self._msg

    def show(self):
        logger.info('%s: %s', self._title, self._msg)
        print('%s: %s' % (self._title, self._msg), flush=True)
        if hasDisplay():
            try:
                MessageView(self._msg, self._title, tkParent=self._tkParent).show()
            except Exception as exc:  # a broken Tk must not crash the viewer
                logger.warning('could not open a dialog: %s', exc)


class PngView(View):
    """Opens PNG files in a matplotlib window; headless: says where they are."""

    def __init__(self, paths, title='DISCA'):
        View.__init__(self)
        self._paths = [paths] if isinstance(paths, str) else list(paths)
        self._title = title

    def getPaths(self):
        return self._paths

    def getMessage(self):
        return '%s: %s' % (self._title, ', '.join(self._paths))

    def show(self):
        if not hasDisplay():
            ConsoleMessageView('no display; open the file(s): ' + ', '.join(self._paths),
                               self._title).show()
            return
        try:
            import matplotlib
            matplotlib.use('TkAgg', force=False)
            import matplotlib.pyplot as plt
            for path in self._paths:
                img = plt.imread(path)
                h, w = img.shape[:2]
                fig = plt.figure(figsize=(min(16, w / 100.0), min(10, h / 100.0)))
                fig.canvas.manager.set_window_title('%s: %s' % (self._title, os.path.basename(path)))
                ax = fig.add_axes([0, 0, 1, 1])
                ax.imshow(img)
                ax.set_axis_off()
            plt.show(block=False)
        except Exception as exc:
            ConsoleMessageView('could not open a window (%s); files: %s'
                               % (exc, ', '.join(self._paths)), self._title).show()


class BrowserView(View):
    """Opens an HTML file in the web browser; headless: says where it is."""

    def __init__(self, path, title='DISCA report'):
        View.__init__(self)
        self._path = os.path.abspath(path)
        self._title = title

    def getMessage(self):
        return '%s: %s' % (self._title, self._path)

    def show(self):
        opened = False
        if hasDisplay():
            try:
                opened = webbrowser.open('file://' + self._path)
            except Exception as exc:
                logger.warning('web browser failed: %s', exc)
        if not opened:
            ConsoleMessageView('open %s in a web browser (it is self-contained: copy it '
                               'anywhere)' % self._path, self._title).show()
