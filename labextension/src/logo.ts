// ozkernels' mark: the same SVG as ozkernels/logos/logo-svg.svg (a test compares them).
export const LOGO_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
  <rect width="64" height="64" rx="14" fill="#0f5c73"/>
  <circle cx="29" cy="35" r="17" fill="none" stroke="#ffffff" stroke-width="7"/>
  <circle cx="48.5" cy="15.5" r="8" fill="#f39c12"/>
</svg>
`;
