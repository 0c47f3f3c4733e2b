// Loads a page's widgets only when they are needed (book/_ext/light_pages.py).
//
// The build moves the page's saved widget state out of its <head> into a JSON file and
// drops the ipywidgets HTML manager (embed.js); this script's data-state and
// data-manager attributes say where they are. When a widget's placeholder comes within
// a screen or two of the viewport (or the reader prints the page), the state is put
// back where the manager looks for it and the manager is loaded. The manager renders
// on the window's "load" event, which has usually passed by then: the listener it
// registers while it runs is called at once instead.
(function () {
  "use strict";
  const script = document.currentScript;
  const stateUrl = script.dataset.state;
  const managerUrl = script.dataset.manager;
  const views = document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]');
  if (!views.length) {
    return;
  }
  let loading = null;
  let observer = null;

  function loadManager() {
    return new Promise((resolve, reject) => {
      const onLoad = [];
      window.addEventListener = function (type, listener, options) {
        if (type === "load") {
          onLoad.push(listener);
        } else {
          EventTarget.prototype.addEventListener.call(window, type, listener, options);
        }
      };
      const manager = document.createElement("script");
      manager.src = managerUrl;
      manager.onload = () => {
        delete window.addEventListener;
        onLoad.forEach((listener) => listener.call(window, new Event("load")));
        resolve();
      };
      manager.onerror = () => {
        delete window.addEventListener;
        reject(new Error(`the widget manager did not load from ${managerUrl}`));
      };
      document.head.appendChild(manager);
    });
  }

  function load() {
    if (loading) {
      return loading;
    }
    if (observer) {
      observer.disconnect();
    }
    loading = fetch(stateUrl)
      .then((response) => {
        if (!response.ok) {
          throw new Error(`HTTP ${response.status} for the widget state ${stateUrl}`);
        }
        return response.text();
      })
      .then((text) => {
        const state = document.createElement("script");
        state.type = "application/vnd.jupyter.widget-state+json";
        state.textContent = text;
        document.head.appendChild(state);
        return loadManager();
      });
    loading.catch((error) => console.error(`widgets: ${error.message}`));
    return loading;
  }

  if ("IntersectionObserver" in window) {
    observer = new IntersectionObserver(
      (entries) => entries.some((entry) => entry.isIntersecting) && load(),
      { rootMargin: "150% 0px" });
    views.forEach((view) => observer.observe(view.parentElement));
  } else {
    load();
  }
  window.addEventListener("beforeprint", load);
  window.attnlabLoadWidgets = load;
})();
