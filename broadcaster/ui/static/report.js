// The printable report: its print button (no inline script: the report has a strict policy).
const printButton = document.querySelector("button.print");
if (printButton) printButton.addEventListener("click", () => window.print());
