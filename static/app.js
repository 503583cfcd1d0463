// Tollgate's only script: progressive enhancement for dialogs and copying.
// Every action also works without it (links fall back to their own pages).
"use strict";

(function () {
  let opener = null;

  function openDialog(dialog, trigger) {
    opener = trigger || document.activeElement;
    if (dialog.open) dialog.close();
    dialog.showModal();
    const first = dialog.querySelector("[autofocus], input:not([type=hidden]), select, button");
    if (first) first.focus();
  }

  document.addEventListener("click", (event) => {
    const trigger = event.target.closest("[data-open-dialog]");
    if (trigger) {
      const dialog = document.getElementById(trigger.dataset.openDialog);
      if (!dialog || typeof dialog.showModal !== "function") return; // follow the link
      event.preventDefault();
      const form = dialog.querySelector("form[data-slot=action]");
      if (form && trigger.dataset.action) form.action = trigger.dataset.action;
      const name = dialog.querySelector("[data-slot=name]");
      if (name && trigger.dataset.name !== undefined) name.textContent = trigger.dataset.name;
      openDialog(dialog, trigger);
      return;
    }
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      const dialog = closer.closest("dialog");
      if (dialog) {
        event.preventDefault();
        dialog.close();
      }
      return;
    }
    const focusTarget = event.target.closest("[data-focus]");
    if (focusTarget) {
      const field = document.getElementById(focusTarget.dataset.focus);
      if (field) {
        event.preventDefault();
        field.scrollIntoView({ block: "center" });
        field.focus();
      }
      return;
    }
    const copy = event.target.closest("[data-copy]");
    if (copy) copyValue(copy);
  });

  // Focus goes back to whatever opened the dialog.
  document.addEventListener("close", (event) => {
    if (event.target instanceof HTMLDialogElement && opener && document.contains(opener)) {
      opener.focus();
    }
  }, true);

  function copyValue(button) {
    const field = document.getElementById(button.dataset.copy);
    const status = button.closest("dialog, .notice, section").querySelector("[data-copy-status]");
    const say = (text) => { if (status) status.textContent = text; };
    const fallback = () => {
      field.focus();
      field.select();
      try {
        say(document.execCommand("copy") ? "Copied to the clipboard." : "Press Ctrl+C (or ⌘C) to copy.");
      } catch (_) {
        say("Press Ctrl+C (or ⌘C) to copy.");
      }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(() => {
        button.textContent = "Copied";
        say("Copied to the clipboard.");
      }, fallback);
    } else {
      fallback();
    }
  }

  // A page that arrives with an open dialog (a form error, the new token)
  // shows it as a modal, so focus stays inside and Escape works.
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("dialog[data-modal][open]").forEach((dialog) => openDialog(dialog, null));
    document.documentElement.classList.add("js");
  });
})();
